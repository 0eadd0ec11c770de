"""The error contract under faults and concurrency (issue 15): one line and exit 2 for what a user
can fix, one line plus a log file and exit 1 for a bug, 130/143 for Ctrl-C/SIGTERM at any phase,
a study manifest that concurrent writers never corrupt, and full or read-only file systems that
leave nothing half-written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import cli, rank_pids, tiny_events, tiny_site

from hpcscale.cli import main

ROOT = os.geteuid() == 0


def one_line_error(stderr: str, prefix: str = "error: ") -> str:
    """The stderr of a refused command: exactly one line, no traceback."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, stderr
    assert lines[0].startswith(prefix), stderr
    return lines[0]


def slow_command(folder: Path, name: str, target: Path, seconds: float, mark: Path) -> Path:
    """A wrapper for a fake scheduler command that touches ``mark`` and sleeps first."""
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(f'#!/bin/sh\ntouch {mark}\nsleep {seconds}\nexec {target} "$@"\n')
    path.chmod(0o755)
    return folder


def as_at_a_terminal() -> None:
    """In the child: SIGINT as at a terminal (a suite started in the background inherits it
    ignored), and a process group of its own, so that the test can signal the whole group the
    way a terminal's Ctrl-C does."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.setpgrp()


def wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.05)


# -- one error boundary ------------------------------------------------------------------------


def test_a_bug_is_one_line_naming_a_log_that_holds_the_traceback(monkeypatch, tmp_path, capsys):
    import hpcscale.cli.follow

    def broken(_folder):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom\nsecond line of the message")

    monkeypatch.setenv("HPCSCALE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(hpcscale.cli.follow, "load", broken)
    with pytest.raises(SystemExit) as exit_:
        main(["status", str(tmp_path)])
    assert exit_.value.code == 1
    line = one_line_error(capsys.readouterr().err, prefix="internal error: ")
    assert "RuntimeError: boom\\nsecond line" in line
    log = Path(line.split("traceback in ")[1].split(";")[0])
    assert log.parent == tmp_path / "cache" / "logs"
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "def broken" not in text
    assert "in broken" in text and "second line of the message" in text


def test_a_user_fixable_os_error_is_one_line_exit_2(monkeypatch, tmp_path, capsys):
    import errno

    import hpcscale.cli.follow

    def full(_folder):  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, "No space left on device")  # a write() names no file

    monkeypatch.setattr(hpcscale.cli.follow, "load", full)
    with pytest.raises(SystemExit) as exit_:
        main(["status", str(tmp_path)])
    assert exit_.value.code == 2
    line = one_line_error(capsys.readouterr().err)
    assert "No space left on device (the file system is full" in line


def test_values_in_messages_are_escaped_and_cut(tmp_path):
    sites = tmp_path / "sites"
    sites.mkdir()
    long = "x" * 10_000
    (sites / "odd.yaml").write_text(
        "scheduler: {kind: slurm, partition: '" + long + "'}\nlauncher: {kind: srun}\n"
        "node: {cpu: t, arch: x86_64, sockets: 1, cores_per_socket: 2, memory_gb: 4}\n"
        'env: {"A\\nB": "1"}\n'
    )
    res = cli("sites", "validate", str(sites / "odd.yaml"))
    assert res.returncode == 2
    line = one_line_error(res.stderr)
    assert len(line) < 700 and "(10002 characters)" in line  # the value and its quotes
    assert "'A\\nB'" in line  # the key with a newline, shown escaped: the line is not split


# -- Ctrl-C and SIGTERM at each phase of a submit -----------------------------------------------


def test_ctrl_c_while_generating_the_default_events_leaves_no_partial_data_set(tmp_path):
    cache = tmp_path / "cache"
    env = {**os.environ, "HPCSCALE_CACHE": str(cache)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hpcscale", "submit", "--site", "local", "--ranks", "1",
         "--study", str(tmp_path / "study")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
        preexec_fn=as_at_a_terminal,
    )  # fmt: skip
    deadline = time.time() + 60
    while not any(cache.glob("*.tmp-*/*.h5")):  # generation has written its first shard
        assert time.time() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # the terminal signals the whole process group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert one_line_error(err, prefix="interrupted (SIGINT)")
    assert not list(cache.iterdir()), "a half-generated data set was left in the cache"


def test_sigterm_while_submitting_is_one_line_and_143(fake_scheduler, tmp_path):
    fakebin = fake_scheduler.state.parent / "fakebin"
    slow = slow_command(tmp_path / "slow", "sbatch", fakebin / "sbatch", 60, tmp_path / "hang")
    study = tmp_path / "study"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hpcscale", "submit", "--site", "pnnl", "--gpus", "2,4",
         "--data", str(tmp_path / "nowhere"), "--study", str(study)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PATH": f"{slow}{os.pathsep}{os.environ['PATH']}"},
        preexec_fn=as_at_a_terminal,
    )  # fmt: skip
    wait_for(tmp_path / "hang")
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    line = one_line_error(err, prefix="interrupted (SIGTERM)")
    assert "manifest.json lists the jobs submitted so far" in line
    manifest = json.loads((study / "manifest.json").read_text())
    assert {j["label"]: j["state"] for j in manifest["jobs"]} == {"2g": "planned", "4g": "planned"}
    assert not (study / ".lock").read_text(), "the lock's holder was not cleared"


def test_ctrl_c_while_waiting_for_a_local_job_leaves_it_running_until_cancelled(tmp_path):
    """A local job is a batch job: Ctrl-C stops the waiting `submit`, not the job (its
    controller has a session of its own); `cancel` stops it, and the summary says so."""
    events = tiny_events(tmp_path / "events", 40, seed=3)
    study = tmp_path / "study"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hpcscale", "submit", "--site", "local", "--ranks", "1",
         "--data", str(events), "--model", "jishnet-small", "--study", str(study),
         "--epochs", "500", "--no-stop-at-target"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        preexec_fn=as_at_a_terminal,
    )  # fmt: skip
    records = study / "jobs" / "1r" / "rank-0.jsonl"
    wait_for(records, timeout=120)  # the job is training
    os.killpg(proc.pid, signal.SIGINT)  # as the terminal's Ctrl-C: the whole process group
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    line = one_line_error(err, prefix="interrupted (SIGINT)")
    assert f"hpcscale cancel {study}" in line
    (job,) = json.loads((study / "manifest.json").read_text())["jobs"]
    assert job["state"] == "submitted" and job["job_id"]
    size = records.stat().st_size
    time.sleep(3)
    assert records.stat().st_size > size, "the job stopped with the submit"
    res = cli("cancel", str(study), timeout=120)
    assert res.returncode == 0 and f"cancelled job {job['job_id']}" in res.stdout, res.stdout
    summary = study / "jobs" / "1r" / "summary.json"
    wait_for(summary, timeout=120)
    res = cli("status", str(study), timeout=120)
    assert res.returncode == 0 and "cancelled" in res.stdout, res.stdout
    assert json.loads(summary.read_text())["status"] == "cancelled"


# -- concurrent writers -------------------------------------------------------------------------


def test_concurrent_submits_into_one_study_submit_each_size_once(fake_scheduler, tmp_path):
    study = tmp_path / "study"
    args = ["--site", "pnnl", "--data", str(tmp_path / "nowhere"), "--study", str(study)]
    sizes = ["2,4,8", "8,4,2", "4,8", "2,16"]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "hpcscale", "submit", "--gpus", s, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for s in sizes
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
    manifest = json.loads((study / "manifest.json").read_text())
    labels = [j["label"] for j in manifest["jobs"]]
    assert sorted(labels) == ["16g", "2g", "4g", "8g"]
    assert all(j["state"] == "submitted" and j["job_id"] for j in manifest["jobs"])
    submitted = fake_scheduler.calls("sbatch")
    assert len(submitted) == 4, "a size was submitted twice"
    assert len({j["job_id"] for j in manifest["jobs"]}) == 4


def test_cancel_while_submitting_stops_the_rest_of_the_sweep(fake_scheduler, tmp_path):
    fakebin = fake_scheduler.state.parent / "fakebin"
    slow = slow_command(tmp_path / "slow", "sbatch", fakebin / "sbatch", 2, tmp_path / "began")
    study = tmp_path / "study"
    submit = subprocess.Popen(
        [sys.executable, "-m", "hpcscale", "submit", "--site", "pnnl", "--gpus", "2,4,8",
         "--data", str(tmp_path / "nowhere"), "--study", str(study)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PATH": f"{slow}{os.pathsep}{os.environ['PATH']}"},
    )  # fmt: skip
    wait_for(tmp_path / "began")  # the first sbatch is under way, the lock held
    cancel = cli("cancel", str(study), timeout=120)
    out, err = submit.communicate(timeout=120)
    assert cancel.returncode == 0, cancel.stderr
    assert submit.returncode == 0, err
    manifest = json.loads((study / "manifest.json").read_text())
    assert {j["state"] for j in manifest["jobs"]} == {"cancelled"}, manifest
    submitted = [j for j in manifest["jobs"] if j["job_id"]]
    assert 1 <= len(submitted) <= 2  # what was submitted before cancel ran, and nothing after
    assert len(fake_scheduler.calls("sbatch")) == len(submitted)
    assert len(fake_scheduler.calls("scancel")) == len(submitted)
    assert "8g: already cancelled" in out  # the submit saw the cancel and skipped it


# -- full and read-only file systems --------------------------------------------------------------


@pytest.fixture
def small_fs(tmp_path):  # type: ignore[no-untyped-def]
    """A 2 MiB tmpfs (root can mount one), filled by the tests that need it full."""
    if not ROOT:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    mount = tmp_path / "fs"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path) -> None:
    try:
        with open(folder / "ballast", "wb") as fh:
            while True:
                fh.write(b"\0" * 4096)
                fh.flush()
    except OSError:
        pass


def test_a_full_file_system_is_one_line_and_leaves_nothing_half_written(small_fs, tmp_path):
    fill(small_fs)
    res = cli("data", "generate", "--events", "30", "--resolution", "300",
              "--out", str(small_fs / "events"))  # fmt: skip
    assert res.returncode == 2
    line = one_line_error(res.stderr)
    assert str(small_fs / "events") in line and "the file system is full" in line
    assert sorted(p.name for p in small_fs.iterdir()) == ["ballast"]

    events = tiny_events(tmp_path / "events", 40, seed=3)
    run = tmp_path / "run"
    res = cli("run", "--ranks", "1", "--data", str(events), "--model", "jishnet-small",
              "--out", str(run), "--epochs", "1")  # fmt: skip
    assert res.returncode == 0, res.stderr
    res = cli("report", str(run), "--out", str(small_fs / "report"))
    assert res.returncode == 2
    assert "the file system is full" in one_line_error(res.stderr)
    assert sorted(p.name for p in small_fs.iterdir()) == ["ballast"], "a partial report was left"

    (small_fs / "ballast").unlink()
    res = cli("report", str(run), "--out", str(small_fs / "report"))
    assert res.returncode == 0, res.stderr  # the same command once there is room


def test_a_read_only_file_system_is_refused_before_any_work(small_fs):
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    for args in (
        ["data", "generate", "--events", "30", "--out", str(small_fs / "events")],
        ["submit", "--site", "local", "--ranks", "1", "--study", str(small_fs / "s"), "--dry-run"],
        ["run", "--ranks", "1", "--out", str(small_fs / "run")],
    ):
        res = cli(*args)
        assert res.returncode == 2, args
        assert "Read-only file system" in one_line_error(res.stderr)


# -- walltime, checkpoint and requeue -----------------------------------------------------------


def test_a_walltime_shorter_than_the_checkpoint_warning_is_refused():
    res = cli("render", "--site", "pnnl", "--gpus", "2", "--walltime", "00:02")
    assert res.returncode == 2
    line = one_line_error(res.stderr)
    assert "too short" in line and "at least 00:03:00" in line


def test_the_requeue_limit_ends_the_job_at_its_walltime_instead(fake_scheduler, tmp_path):
    """USR2 with no requeue left (``--requeues 0``): the ranks stop together, evaluate and
    write a completed summary that says why; nothing is requeued."""
    sites = tiny_site(tmp_path / "sites", "fake-slurm", "events: 200, epochs: 4")
    data = tiny_events(tmp_path / "events", 200, seed=4)
    study = tmp_path / "study"
    res = cli(
        *f"submit --site fake-slurm --ranks 2 --data {data} --study {study}".split(),
        *("--sites-dir", str(sites), "--requeues", "0", "--no-stop-at-target"),
        cwd=tmp_path,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    job = study / "jobs" / "2r"
    assert "--max-requeues 0" in (job / "job.sh").read_text()
    log, deadline = job / "rank-1.jsonl", time.time() + 180
    while not log.exists() or log.read_text().count('"kind": "step"') < 4:
        ended = (job / "summary.json").exists()
        if ended or time.time() > deadline:
            logs = sorted(job.glob("*.log")) + sorted(job.glob("*.out"))
            tail = "\n".join(p.read_text()[-2000:] for p in logs)
            pytest.fail(f"the job {'ended' if ended else 'never got'} before step 4:\n{tail}")
        time.sleep(0.3)
    pids = rank_pids(job)
    assert len(pids) == 2
    for pid in pids:
        os.kill(pid, signal.SIGUSR2)
    wait_for(job / "summary.json", timeout=300)
    summary = json.loads((job / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["stop_reason"] == "requeues"
    assert summary["segments"] == 1 and summary["epochs"] < 4
    assert fake_scheduler.calls("scontrol") == []


# -- damaged results ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished_job(tmp_path_factory):  # type: ignore[no-untyped-def]
    """A real two-rank job of the small preset, trained once for the tests below to damage."""
    tmp = tmp_path_factory.mktemp("job")
    events = tiny_events(tmp / "events", 60, seed=3)
    res = cli("run", "--ranks", "2", "--data", str(events), "--model", "jishnet-small",
              "--out", str(tmp / "run"), "--epochs", "2", "--ttl-window", "2")  # fmt: skip
    assert res.returncode == 0, res.stderr
    return tmp / "run"


def test_a_garbled_record_line_is_skipped_and_counted_not_the_rest(finished_job, tmp_path):
    import shutil

    from hpcscale.train.records import read_records, summarize

    job = tmp_path / "job"
    shutil.copytree(finished_job, job)
    path = job / "rank-0.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    before = read_records(path)
    middle = len(lines) // 2
    path.write_bytes(
        b"".join([*lines[:middle], b'{"kind": "st\xff\n', b"[1, 2]\n", *lines[middle:]])
    )
    assert read_records(path) == before  # every good line, the ones after the bad ones too
    summary = summarize(job, 2)
    assert summary["skipped_record_lines"] == {"0": 2}
    res = cli("report", str(job))
    assert res.returncode == 0, res.stderr
    report = (job / "report" / "report.md").read_text()
    assert "2 record line(s) were not valid JSON and were skipped" in report


def test_a_truncated_summary_is_one_line_or_read_around(tmp_path):
    """A study whose job's summary.json was cut short (a full disk, a copy interrupted)."""
    events = tiny_events(tmp_path / "events", 40, seed=3)
    study = tmp_path / "study"
    res = cli("submit", "--site", "local", "--ranks", "1", "--data", str(events), "--model",
              "jishnet-small", "--epochs", "1", "--study", str(study), cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    summary = study / "jobs" / "1r" / "summary.json"
    text = summary.read_text()
    for folder in (study, study / "jobs" / "1r"):
        for command in ("status", "collect", "report"):
            summary.write_text(text[: len(text) // 2])
            res = cli(command, str(folder), cwd=tmp_path)
            assert "Traceback" not in res.stderr, res.stderr
            assert res.returncode in (0, 2), res.stderr
            if res.returncode == 2:
                assert "summary.json" in one_line_error(res.stderr)


def test_a_report_of_a_folder_without_results_leaves_nothing(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    res = cli("report", str(empty))
    assert res.returncode == 2
    assert "no such file" in one_line_error(res.stderr)
    assert list(empty.iterdir()) == []
    for command in ("status", "cancel", "collect", "report"):
        res = cli(command, str(tmp_path / "nothere"))
        assert res.returncode == 2 and "no such folder" in one_line_error(res.stderr)
        assert not (tmp_path / "nothere").exists(), f"{command} made the folder"


def test_the_horovod_engine_without_horovod_is_refused_naming_the_build_script(monkeypatch):
    import importlib.util

    from hpcscale.errors import UserError
    from hpcscale.preflight import check_engine
    from hpcscale.sites import load_site

    site = load_site("local", []).model_copy(update={"engine": "horovod"})
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "horovod" else real(name, *a)
    )
    with pytest.raises(UserError, match=r"bash scripts/build-horovod.sh"):
        check_engine(site)
    check_engine(site.model_copy(update={"engine": "torch"}))  # torch needs nothing more
