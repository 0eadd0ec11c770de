"""Submission through submitit against fake schedulers: every bundled site's command and script,
the ranks each launcher starts, and a whole study (submit → status → collect)."""

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

from hpcscale.plan import Request
from hpcscale.render.script import JobSpec
from hpcscale.schedulers.jobs import make_executor, plan_job
from hpcscale.sites import load_site, site_files
from hpcscale.sites.detect import resolve
from hpcscale.train.jobenv import detect
from hpcscale.train.records import read_records

SUBMISSION = {"slurm": "sbatch", "lsf": "bsub", "pbs": "qsub"}
LAUNCHER_SEEN = {
    "srun": "srun",
    "jsrun": "jsrun",
    "ibrun": "pmi",
    "aprun": "aprun",
    "mpirun": "pmi",
}
CLUSTER_SITES = sorted(n for n in site_files() if resolve(load_site(n)).scheduler.kind != "local")


def _small_request(site) -> Request:
    if site.node.gpus:
        return Request(gpus=min(2, site.node.gpus.count * 2))
    return Request(nodes=1)


@pytest.mark.parametrize("name", CLUSTER_SITES)
def test_site_submission_runs_ranks_through_its_launcher(
    name, fake_scheduler, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    site = resolve(load_site(name))
    plan = plan_job(site, _small_request(site))
    folder = tmp_path / "job" / "submitit"
    executor = make_executor(site, plan, JobSpec(name=f"t-{name}", command=["true"]), folder)
    job = executor.submit(detect)
    results = job.results()  # waits; every task's JobEnvironment as it saw it

    ranks = sorted((r.rank, r.world_size) for r in results)
    assert ranks == [(k, plan.ranks) for k in range(plan.ranks)]
    assert {r.launcher for r in results} == {LAUNCHER_SEEN[site.launcher.kind]}

    kind = site.scheduler.kind
    (submitted,) = fake_scheduler.calls(SUBMISSION[kind])
    script = submitted["script"]
    assert script == Path(job.paths.submission_file).read_text()
    assert f"-u -m submitit.core._submit {folder}" in script
    backend = site.scheduler.backend
    executor_name = "slurm-mpi" if kind == "slurm" and site.launcher.kind != "srun" else backend
    assert f"export SUBMITIT_EXECUTOR={executor_name}" in script
    if kind == "slurm":
        assert submitted["argv"] == [submitted["argv"][0]] and submitted["argv"][0].endswith(".sh")
        assert f"#SBATCH --nodes={plan.nodes}" in script and "#SBATCH --signal=USR2@" in script
        assert ("--unbuffered --output" in script) == (site.launcher.kind == "srun")
    elif kind == "lsf":
        assert submitted["argv"] == []  # the script came on stdin
        assert f"#BSUB -nnodes {plan.nodes}" in script and "#BSUB -wa USR2" in script
    else:
        assert len(submitted["argv"]) == 1
        assert "#PBS -l walltime=" in script
    launcher_calls = fake_scheduler.calls(site.launcher.kind)
    assert len(launcher_calls) == 1
    for module in site.modules:
        assert {"cmd": "module", "argv": ["load", module]} in fake_scheduler.calls("module")


def test_whole_study_through_fake_slurm(fake_scheduler, tmp_path):
    sites = tiny_site(tmp_path / "sites", "fake-slurm", "events: 120, epochs: 1, target_loss: 1.7")
    data = tiny_events(tmp_path / "events", 120, seed=2)
    study = tmp_path / "study"

    submit = f"submit --site fake-slurm --ranks 1,2 --data {data} --study {study}".split()
    res = cli(*submit, "--wait", "--ttl-window", "5", "--sites-dir", str(sites), cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    manifest = json.loads((study / "manifest.json").read_text())
    assert [j["label"] for j in manifest["jobs"]] == ["1r", "2r"]
    assert all(j["state"] == "completed" for j in manifest["jobs"])
    assert len(fake_scheduler.calls("sbatch")) == 2
    for label, ranks in (("1r", 1), ("2r", 2)):
        summary = json.loads((study / "jobs" / label / "summary.json").read_text())
        assert summary["world_size"] == ranks and summary["provenance"]["launcher"] == "srun"
        for key in ("dlt_s", "ttl_s", "epoch_rate_per_min"):
            assert summary[key] is not None and summary[key] > 0
    # Submitting the same study again does not duplicate jobs.
    res = cli(*submit, "--ttl-window", "5", "--sites-dir", str(sites), cwd=tmp_path)
    assert res.returncode == 0 and "already completed" in res.stdout
    assert len(fake_scheduler.calls("sbatch")) == 2
    res = cli("collect", str(study))
    assert res.returncode == 0 and "completed" in res.stdout


def test_failed_sbatch_is_one_line_and_manifest_says_so(fake_scheduler, tmp_path):
    bad = Path(fake_scheduler.state.parent / "fakebin" / "sbatch")
    bad.unlink()
    bad.write_text(
        "#!/bin/sh\necho 'sbatch: error: invalid partition specified: gpu' >&2\nexit 1\n"
    )
    bad.chmod(0o755)
    study = tmp_path / "study"
    res = cli(
        *f"submit --site pnnl --gpus 2,4 --data {tmp_path / 'nowhere'} --study {study}".split(),
        timeout=120,
    )
    assert res.returncode == 2
    assert "invalid partition specified" in res.stderr and "Traceback" not in res.stderr
    manifest = json.loads((study / "manifest.json").read_text())
    assert [(j["label"], j["state"]) for j in manifest["jobs"]] == [
        ("2g", "submit-failed"),
        ("4g", "planned"),  # the whole sweep is listed; a re-submit submits both
    ]


def test_dry_run_writes_scripts_submits_nothing(fake_scheduler, tmp_path):
    study = tmp_path / "study"
    res = cli(*f"submit --site summitdev --gpus 4,8 --study {study} --dry-run".split(), timeout=120)
    assert res.returncode == 0, res.stderr
    assert fake_scheduler.calls() == []
    script = (study / "jobs" / "8g" / "job.sh").read_text()
    assert "#BSUB -nnodes 2" in script and "jsrun --nrs 8" in script


def test_unknown_site_lists_known(tmp_path):
    res = cli(
        *f"submit --site nowhere --gpus 1 --dry-run --study {tmp_path / 's'}".split(), timeout=60
    )
    assert res.returncode == 2 and "known sites: endeavour, local" in res.stderr


def test_walltime_signal_checkpoints_requeues_and_resumes(fake_scheduler, tmp_path):
    """USR2 (Slurm's warning before the time limit) → checkpoint → requeue → resume; every
    step is recorded exactly once across the two segments."""
    sites = tiny_site(tmp_path / "sites", "fake-slurm", "events: 200, epochs: 4")
    data = tiny_events(tmp_path / "events", 200, seed=4)
    study = tmp_path / "study"
    res = cli(
        *f"submit --site fake-slurm --ranks 2 --data {data} --study {study}".split(),
        "--sites-dir",
        str(sites),
        "--no-stop-at-target",
        cwd=tmp_path,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    job = study / "jobs" / "2r"
    deadline = time.time() + 180
    while time.time() < deadline:
        log = job / "rank-1.jsonl"
        if log.exists() and log.read_text().count('"kind": "step"') >= 8:
            break
        time.sleep(0.3)
    else:
        pytest.fail("the job never got to step 8")
    pids = rank_pids(job)
    assert len(pids) == 2
    for pid in pids:
        os.kill(pid, signal.SIGUSR2)
    deadline = time.time() + 300
    while time.time() < deadline and not (job / "summary.json").exists():
        time.sleep(0.5)
    summary = json.loads((job / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["segments"] == 2
    assert summary["stop_reason"] == "epochs"
    assert [c["argv"][0] for c in fake_scheduler.calls("scontrol")] == ["requeue"]
    # The requeue was submitit's own (its USR2 handler, given the signal back after the
    # checkpoint), not a second path of hpcscale's.
    logs = "".join(p.read_text() for p in (job / "submitit").glob("*_0_log.err"))
    assert logs.count("Caught signal SIGUSR2") == 1 and "this job is preempted" in logs
    for rank in (0, 1):
        rows = read_records(job / f"rank-{rank}.jsonl")
        for kind in ("step", "sync"):
            steps = [r["step"] for r in rows if r["kind"] == kind]
            assert steps == list(range(1, summary["steps"] + 1)), kind
        (end,) = [r for r in rows if r["kind"] == "segment_end"]
        (start,) = [r for r in rows if r["kind"] == "segment_start"]
        assert start["step"] == end["step"] and start["segment"] == 1
        later = [r for r in rows if r["kind"] == "step" and r["step"] > end["step"]]
        assert later and all(r["segment"] == 1 and r["t_total"] > r["t"] for r in later)
    assert summary["train_time_s"] > 0 and summary["epochs"] == pytest.approx(4, abs=0.05)


def test_ctrl_c_mid_sweep_leaves_a_consistent_manifest(fake_scheduler, tmp_path):
    fakebin = fake_scheduler.state.parent / "fakebin"
    slowbin = tmp_path / "slowbin"
    slowbin.mkdir()
    # The second submission hangs until interrupted (`exec`: killing it kills the sleep, which
    # would otherwise hold pipes open) and says when it started hanging.
    slow = slowbin / "sbatch"
    slow.write_text(
        f"#!/bin/sh\nif [ -e {tmp_path}/once ]; then touch {tmp_path}/hanging; exec sleep 60; fi\n"
        f'touch {tmp_path}/once\nexec {fakebin}/sbatch "$@"\n'
    )
    slow.chmod(0o755)
    study = tmp_path / "study"
    cmd = [
        sys.executable,
        "-m",
        "hpcscale",
        "submit",
        "--site",
        "pnnl",
        "--gpus",
        "2,4,8",
        "--data",
        str(tmp_path / "nowhere"),  # not on this machine: submit leaves it to the jobs
        "--study",
        str(study),
    ]
    env = {**os.environ, "PATH": f"{slowbin}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        # SIGINT as at a terminal: a suite started in the background (`cmd &` from a script)
        # inherits SIGINT ignored, and Python then keeps ignoring it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 60
    while time.time() < deadline and not (tmp_path / "hanging").exists():
        time.sleep(0.1)
    time.sleep(0.5)  # the submitting process is waiting for the hanging sbatch
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "manifest.json lists the jobs submitted so far" in err
    manifest = json.loads((study / "manifest.json").read_text())
    states = {j["label"]: (j["state"], j["job_id"]) for j in manifest["jobs"]}
    assert states["2g"][0] == "submitted" and states["2g"][1]
    assert states.get("4g", ("planned", None)) == ("planned", None)
    # Submitting the study again skips what was submitted and submits the rest.
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "2g: already submitted" in res.stdout
    manifest = json.loads((study / "manifest.json").read_text())
    assert sorted(j["label"] for j in manifest["jobs"]) == ["2g", "4g", "8g"]
    assert len(fake_scheduler.calls("sbatch")) == 3
