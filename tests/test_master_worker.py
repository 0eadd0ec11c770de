"""The master/worker engine (issue 29): its rules by hand, and real Gloo runs on CPU."""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from conftest import cli, rank_pids, tiny_events, tiny_site  # noqa: E402

from hpcscale import workloads  # noqa: E402
from hpcscale.data.generate import generate  # noqa: E402
from hpcscale.train.engine import mw_rules as mw  # noqa: E402
from hpcscale.train.records import read_records  # noqa: E402


# -- the rules, by hand -------------------------------------------------------------------------
def test_staleness_accounting_on_a_scripted_arrival_order():
    # With K = 0. A and B pull version 0. A arrives first (stale 0: applied, v1); B's gradient
    # was computed on v0 and arrives at v1 (stale 1: refused, B gets v1); A pulled v1 and
    # arrives at v1 (stale 0, v2); B pulled v1 and arrives at v2 (refused again); A (v2 → v3).
    ledger = mw.Ledger(max_staleness=0)
    script = [("A", 0), ("B", 0), ("A", 1), ("B", 1), ("A", 2)]
    got = [ledger.judge(w, pulled) for w, pulled in script]
    assert got == [(True, 0), (False, 1), (True, 0), (False, 1), (True, 0)]
    assert ledger.version == 3 and ledger.rejected == 2
    assert ledger.summary()["staleness"] == {"0": 3, "1": 2}
    assert ledger.by_worker["B"]["rejected"] == 2 and ledger.by_worker["A"]["applied"] == 3

    # Without a bound every gradient is applied; each pulls the version after its last update,
    # and C, which pulled v0, arrives after five updates.
    unbounded = mw.Ledger()
    script = [("A", 0), ("B", 0), ("A", 1), ("B", 2), ("A", 3), ("C", 0)]
    got = [unbounded.judge(w, pulled) for w, pulled in script]
    assert got == [(True, 0), (True, 1), (True, 1), (True, 1), (True, 1), (True, 5)]
    assert unbounded.summary()["staleness"] == {"0": 1, "1": 4, "5": 1}
    assert unbounded.summary()["staleness_max"] == 5 and unbounded.version == 6
    with pytest.raises(ValueError, match="claims version"):
        unbounded.judge("A", 9)


def test_easgd_meeting_on_hand_computed_numbers():
    # centre c = (1, 2), worker x = (3, -2), alpha 0.25: the master moves c + 0.25 (x - c) =
    # (1.5, 1.0); the worker x - 0.25 (x - c_before) = (2.5, -1.0).
    centre = torch.tensor([1.0, 2.0])
    local = torch.tensor([3.0, -2.0])
    before = mw.elastic_centre_(centre, local, 0.25)
    mw.elastic_pull_(local, before, 0.25)
    assert before.tolist() == [1.0, 2.0]
    assert centre.tolist() == [1.5, 1.0]
    assert local.tolist() == [2.5, -1.0]
    # the elastic force conserves the sum of the two
    assert (centre + local).tolist() == [4.0, 0.0]


def test_gem_scale_on_hand_computed_numbers():
    # kappa 1, momentum 0.5. Step 1: proxy m = delta = (0.2, -0.1, 0); the centre moved
    # (0.05, 0.3, 0): pi = ((0.2 - 0.05) / 0.2, (0.1 - 0.3) / 0.1 -> 0, (0 - 0) / eps = 0).
    gem = mw.Gem(kappa=1.0, momentum=0.5)
    pi = gem.scale(torch.tensor([0.2, -0.1, 0.0]), torch.tensor([0.05, 0.3, 0.0]))
    assert pi.tolist() == pytest.approx([0.75, 0.0, 0.0])
    # Step 2: m = 0.5 m + delta = (0.2, 0.05, 0.001); the centre still: pi = |m| / |delta| =
    # (2, 0.5, 1); kappa 3 would give (6 -> 5, 1.5, 3): at most 5.
    pi = gem.scale(torch.tensor([0.1, 0.1, 0.001]), torch.zeros(3))
    assert pi.tolist() == pytest.approx([2.0, 0.5, 1.0])
    assert gem.proxy.tolist() == pytest.approx([0.2, 0.05, 0.001])
    tripled = mw.Gem(kappa=3.0, momentum=0.5, proxy=torch.tensor([0.2, -0.1, 0.0]))
    pi = tripled.scale(torch.tensor([0.1, 0.1, 0.001]), torch.zeros(3))
    assert pi.tolist() == pytest.approx([5.0, 1.5, 3.0])


def test_gem_options_need_the_gem_rule(tmp_path):
    from hpcscale.train.config import CoreConfig

    base = {"data": tmp_path, "out": tmp_path / "o", "engine": "master-worker"}
    with pytest.raises(ValueError, match="--gem-kappa needs --update-rule gem"):
        CoreConfig(**base, gem_kappa=2.0)
    with pytest.raises(ValueError, match="--max-staleness applies to --update-rule downpour or"):
        CoreConfig(**base, update_rule="easgd", max_staleness=1)
    assert CoreConfig(**base, update_rule="gem", gem_kappa=2.0, max_staleness=3).gem_kappa == 2.0


# -- real runs ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def showers(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mw") / "showers"
    workloads.generator("3dgan")(folder, 240, seed=1, workers=1)
    return folder


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mw") / "events"
    generate(folder, 300, resolution=300, seed=1, workers=1)
    return folder


def _spawn(world: int, args: list[str]) -> list[subprocess.Popen]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for rank in range(world):
        env = {
            **os.environ, "RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank),
            "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1",
        }  # fmt: skip
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "hpcscale.train", *args],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    return procs


def _run(world: int, args: list[str]) -> list[int]:
    procs = _spawn(world, args)
    codes = []
    for p in procs:
        _, err = p.communicate(timeout=600)
        codes.append(p.returncode)
        assert p.returncode in (0, 2) or "killed" in err, err[-2000:]
    return codes


def _steps(path: Path) -> list[dict]:
    return [r for r in read_records(path) if r["kind"] == "step"]


@pytest.mark.parametrize(
    ("model", "extra", "keys"),
    [
        ("3dgan-small", ["--fom-every", "2", "--fom-showers", "8", "--epochs", "0.1"],
         ("loss", "d_loss", "g_loss")),
        ("jishnet-small", ["--epochs", "0.2"], ("loss", "acc")),
    ],
)  # fmt: skip
def test_one_worker_without_staleness_equals_one_synchronous_rank(
    model, extra, keys, showers, events, tmp_path
):
    data = showers if model.startswith("3dgan") else events
    common = ["--data", str(data), "--model", model, "--ttl-window", "5", "--seed", "3", *extra]
    assert _run(1, [*common, "--out", str(tmp_path / "sync")]) == [0]
    mw_args = [*common, "--engine", "master-worker", "--max-staleness", "0"]
    assert _run(2, [*mw_args, "--out", str(tmp_path / "mw")]) == [0, 0]
    sync, worker = (
        _steps(tmp_path / "sync" / "rank-0.jsonl"),
        _steps(tmp_path / "mw" / "rank-1.jsonl"),
    )
    assert len(sync) == len(worker) >= 3
    for a, b in zip(sync, worker, strict=True):
        for key in keys:
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), (a["step"], key)
    s1 = json.loads((tmp_path / "sync" / "summary.json").read_text())
    s2 = json.loads((tmp_path / "mw" / "summary.json").read_text())
    assert s2["status"] == "completed" and s2["provenance"]["engine"] == "master-worker"
    quality = "val_fom" if model.startswith("3dgan") else "val_accuracy"
    assert s2[quality] == pytest.approx(s1[quality], rel=1e-5)
    info = s2["master_worker"]
    assert info["updates"] == len(sync) and info["staleness"] == {"0": len(sync)}
    assert info["per_worker"]["0"]["status"] == "done"
    updates = [r for r in read_records(tmp_path / "mw" / "rank-0.jsonl") if r["kind"] == "update"]
    assert [r["worker"] for r in updates] == [0] * len(sync)
    assert all(r["staleness"] == 0 and r["applied"] for r in updates)


def test_a_group_of_two_averages_its_gradient_and_easgd_runs(events, tmp_path):
    common = ["--data", str(events), "--model", "jishnet-small", "--epochs", "0.4"]
    out = tmp_path / "group"
    assert _run(
        3, [*common, "--engine", "master-worker", "--group-size", "2", "--out", str(out)]
    ) == [0, 0, 0]
    summary = json.loads((out / "summary.json").read_text())
    info = summary["master_worker"]
    assert info["workers"] == 1 and info["group_size"] == 2
    assert info["per_worker"]["0"]["ranks"] == [1, 2]
    a, b = _steps(out / "rank-1.jsonl"), _steps(out / "rank-2.jsonl")
    updates = [r for r in read_records(out / "rank-0.jsonl") if r["kind"] == "update"]
    # the master saw the group's mean loss, one update per group step
    assert len(updates) == len(a) == len(b)
    for u, x, y in zip(updates, a, b, strict=True):
        assert u["loss"] == pytest.approx((x["loss"] + y["loss"]) / 2, rel=1e-5)
    busy = info["master_busy"]
    assert busy["apply_fraction"] + busy["send_fraction"] + busy["idle_fraction"] <= 1.0001

    out = tmp_path / "easgd"
    args = [*common, "--engine", "master-worker", "--update-rule", "easgd", "--out", str(out)]
    assert _run(3, args) == [0, 0, 0]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["master_worker"]["rule"] == "easgd"
    assert summary["master_worker"]["workers"] == 2


def test_gem_sends_the_workers_own_step_scaled_and_the_master_adds_it(events, tmp_path):
    """One worker, kappa 1: GEM's first update is the worker's optimizer step itself (pi = 1
    where the step is not zero), so its first two steps are the synchronous rank's; then its
    proxy and the centre's move scale the steps. Two workers train on to the end."""
    common = ["--data", str(events), "--model", "jishnet-small", "--epochs", "0.2",
              "--ttl-window", "5", "--seed", "3"]  # fmt: skip
    assert _run(1, [*common, "--out", str(tmp_path / "sync")]) == [0]
    gem = [*common, "--engine", "master-worker", "--update-rule", "gem"]
    assert _run(2, [*gem, "--out", str(tmp_path / "one")]) == [0, 0]
    sync, worker = (
        _steps(tmp_path / "sync" / "rank-0.jsonl"),
        _steps(tmp_path / "one" / "rank-1.jsonl"),
    )
    assert len(sync) == len(worker) >= 3
    for a, b in zip(sync[:2], worker[:2], strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
    pulls = [r for r in read_records(tmp_path / "one" / "rank-1.jsonl") if r["kind"] == "pull"]
    assert 0.9 < pulls[0]["gem_pi_mean"] <= 1.0  # 1 but where the step was zero
    assert len({round(p["gem_pi_mean"], 6) for p in pulls}) > 1
    summary = json.loads((tmp_path / "one" / "summary.json").read_text())
    info = summary["master_worker"]
    assert info["rule"] == "gem" and info["gem_kappa"] == 1.0 and info["gem_momentum"] == 0.9
    assert info["updates"] == len(worker)

    assert _run(3, [*gem, "--gem-kappa", "0.5", "--out", str(tmp_path / "two")]) == [0, 0, 0]
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["master_worker"]["workers"] == 2
    assert summary["master_worker"]["gem_kappa"] == 0.5
    losses = [r["loss"] for r in _steps(tmp_path / "two" / "rank-1.jsonl")]
    assert all(math.isfinite(x) for x in losses)


def test_a_bad_group_size_is_one_line(events, tmp_path):
    args = ["--data", str(events), "--model", "jishnet-small", "--engine", "master-worker",
            "--group-size", "2", "--out", str(tmp_path / "j")]  # fmt: skip
    codes = _run(2, args)
    assert codes == [2, 2]
    status = json.loads((tmp_path / "j" / "rank-0.status.json").read_text())
    assert "do not split into groups of 2" in status["reason"]


def _wait_for(path: Path, kind: str, count: int, timeout: float = 300) -> None:
    """Until ``path`` holds ``count`` records of ``kind`` (a rank got that far)."""
    deadline = time.time() + timeout
    while not path.exists() or sum(r["kind"] == kind for r in read_records(path)) < count:
        if time.time() > deadline:
            pytest.fail(f"{path.name}: fewer than {count} {kind!r} records after {timeout} s")
        time.sleep(0.2)


def test_a_dead_worker_does_not_stop_the_job(events, tmp_path):
    out = tmp_path / "job"
    args = ["--data", str(events), "--model", "jishnet-small", "--epochs", "2",
            "--engine", "master-worker", "--out", str(out)]  # fmt: skip
    procs = _spawn(3, args)
    _wait_for(out / "rank-2.jsonl", "pull", 2)  # rank 2 has had weights from the master twice
    procs[2].send_signal(signal.SIGKILL)
    for p in procs:
        p.communicate(timeout=600)
    assert [p.returncode for p in procs[:2]] == [0, 0]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed", summary["failures"]
    (lost,) = summary["lost_workers"]
    assert lost["worker"] == 1 and lost["ranks"] == [2] and lost["t_s"] > 0
    assert "closed" in lost["reason"] or "reset" in lost["reason"].lower()
    per = summary["master_worker"]["per_worker"]
    assert per["1"]["status"] == "lost" and per["0"]["status"] == "done"
    assert summary["val_accuracy"] is not None


def test_the_master_ends_when_its_last_worker_is_lost(events, tmp_path):
    """Every worker lost: the master stops, evaluates what it has and completes the job, naming
    the lost worker (stop reason workers_lost)."""
    out = tmp_path / "job"
    args = ["--data", str(events), "--model", "jishnet-small", "--epochs", "3",
            "--engine", "master-worker", "--out", str(out)]  # fmt: skip
    procs = _spawn(2, args)
    _wait_for(out / "rank-1.jsonl", "pull", 2)
    procs[1].send_signal(signal.SIGKILL)
    for p in procs:
        p.communicate(timeout=600)
    assert procs[0].returncode == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed", summary["failures"]
    assert summary["stop_reason"] == "workers_lost"
    (lost,) = summary["lost_workers"]
    assert lost["ranks"] == [1] and lost["last_step"] >= 2
    assert summary["val_accuracy"] is not None  # the master evaluated what it had


def test_walltime_requeue_resumes_from_the_masters_checkpoint(fake_scheduler, tmp_path):
    """USR2 → the master's verdict is requeue → it checkpoints (its model, optimizer, version and
    each worker's step) → the job is requeued → every rank resumes from that checkpoint."""
    sites = tiny_site(tmp_path / "sites", "fake-slurm", "events: 200, epochs: 3")
    data = tiny_events(tmp_path / "events", 200, seed=4)
    study = tmp_path / "study"
    res = cli(
        *f"submit --site fake-slurm --ranks 2 --engine master-worker --data {data}".split(),
        *f"--study {study} --sites-dir {sites} --no-stop-at-target".split(),
        cwd=tmp_path,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    job = study / "jobs" / "2r"
    deadline = time.time() + 180
    while time.time() < deadline:
        log = job / "rank-1.jsonl"
        if log.exists() and log.read_text().count('"kind": "pull"') >= 6:
            break
        time.sleep(0.3)
    else:
        pytest.fail("the worker never got to step 6")
    for pid in rank_pids(job):
        os.kill(pid, signal.SIGUSR2)
    deadline = time.time() + 300
    while time.time() < deadline and not (job / "summary.json").exists():
        time.sleep(0.5)
    summary = json.loads((job / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["segments"] == 2, summary["failures"]
    assert summary["stop_reason"] == "epochs"
    worker = read_records(job / "rank-1.jsonl")
    steps = [r["step"] for r in worker if r["kind"] == "step"]
    assert steps == list(range(1, len(steps) + 1))  # each step once, across both segments
    (end,) = [r for r in worker if r["kind"] == "segment_end"]
    assert 0 < end["step"] < len(steps)
    updates = [r for r in read_records(job / "rank-0.jsonl") if r["kind"] == "update"]
    assert [r["version"] for r in updates] == list(range(1, len(steps) + 1))
    assert summary["master_worker"]["updates"] == summary["steps"] == len(steps)


def test_a_study_of_both_engines_and_one_report(showers, tmp_path):
    """`submit --ranks 2,3 --engine master-worker` and the same synchronous, one report of both
    (the local site declared with 4 cores: 3 ranks share the machine's 2)."""
    sites = tmp_path / "sites"
    sites.mkdir()
    (sites / "local-4.yaml").write_text(
        "scheduler: {kind: local, exclusive: false}\nlauncher: {kind: local}\nengine: torch\n"
        "node: {cpu: test, arch: x86_64, sockets: 1, cores_per_socket: 4, memory_gb: 8}\n"
        "limits: {max_nodes: 1, max_walltime: '01:00:00'}\n"
    )
    common = [
        "--site", "local-4", "--sites-dir", str(sites), "--ranks", "2,3", "--model",
        "3dgan-small", "--data", str(showers), "--max-events", "96", "--epochs", "1",
        "--fom-every", "4", "--fom-showers", "8", "--ttl-window", "3", "--no-stop-at-target",
    ]  # fmt: skip
    for engine in ("master-worker", "torch"):
        res = cli("submit", *common, "--engine", engine, "--study", str(tmp_path / engine))
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    mw_jobs = {}
    for label in ("2r", "3r"):
        summary = json.loads(
            (tmp_path / "master-worker" / "jobs" / label / "summary.json").read_text()
        )
        assert (
            summary["status"] == "completed" and summary["provenance"]["engine"] == "master-worker"
        )
        mw_jobs[label] = summary["master_worker"]
    assert mw_jobs["2r"]["workers"] == 1 and mw_jobs["3r"]["workers"] == 2
    assert mw_jobs["2r"]["staleness"] == {"0": mw_jobs["2r"]["updates"]}
    assert sum(mw_jobs["3r"]["staleness"].values()) == mw_jobs["3r"]["updates"]
    res = cli("report", str(tmp_path / "master-worker"), str(tmp_path / "torch"), "--out",
              str(tmp_path / "report"))  # fmt: skip
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    text = (tmp_path / "report" / "report.md").read_text()
    assert "## Master/worker" in text and "Beside the synchronous engine" in text
    assert "master-worker-" in text and any((tmp_path / "report").glob("master-worker-*.png"))


def test_the_masters_death_ends_the_job_with_a_truthful_summary(events, tmp_path):
    from hpcscale.train.records import summarize

    out = tmp_path / "job"
    args = ["--data", str(events), "--model", "jishnet-small", "--epochs", "3",
            "--engine", "master-worker", "--out", str(out)]  # fmt: skip
    procs = _spawn(3, args)
    deadline = time.time() + 300
    while time.time() < deadline:
        path = out / "rank-0.jsonl"
        if path.exists() and sum(r["kind"] == "update" for r in read_records(path)) >= 4:
            break
        time.sleep(0.2)
    procs[0].send_signal(signal.SIGKILL)
    for p in procs:
        p.communicate(timeout=300)
    assert [p.returncode for p in procs[1:]] == [1, 1]  # both workers stopped, not hung
    summary = summarize(out, 3)  # what `hpcscale collect` writes when rank 0 died
    assert summary["status"] == "failed"
    assert (
        summary["failure"]["rank"] == 0 and "died without a status" in summary["failure"]["reason"]
    )
    workers = [f for f in summary["failures"] if f["rank"] in (1, 2)]
    assert len(workers) == 2 and all(f.get("peer") for f in workers)
