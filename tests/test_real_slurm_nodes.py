"""Against a real two-node Slurm on this machine: nodes n1 and n2 (partition `nodes`, site
`local-nodes`), each slurmd in network, UTS and mount namespaces of its own on a bridge, which
.ci/slurm-up starts beside the one-node cluster. Ranks on the two nodes have different host
names and talk over the bridge (the rendezvous on n1's address); a node is lost by killing
everything in its namespaces. CI runs it (.ci/run); elsewhere, as root:
`bash .ci/slurm-up && HPCSCALE_REAL_SLURM=1 python -m pytest -m slurm`."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from conftest import cli, tiny_events

from hpcscale import workloads
from hpcscale.train.records import read_records, skipped_lines

pytestmark = pytest.mark.slurm
if os.environ.get("HPCSCALE_REAL_SLURM") != "1":
    pytest.skip(
        "needs the real Slurm that .ci/slurm-up starts (HPCSCALE_REAL_SLURM=1)",
        allow_module_level=True,
    )

NODES_SCRIPT = Path(__file__).resolve().parents[1] / ".ci" / "slurm-nodes"
SITE = ("--site", "local-nodes", "--nodes", "2")
HOSTS = {"0": "n1", "1": "n2"}  # block distribution: rank 0 on the first node


def _nodes(command: str, *args: str) -> None:
    res = subprocess.run(
        ["bash", str(NODES_SCRIPT), command, *args], capture_output=True, text=True, timeout=180
    )
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.fixture(scope="module")
def nodes() -> None:
    """Both nodes up and idle (a node lost by an earlier run comes back)."""
    _nodes("up")


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_events(tmp_path_factory.mktemp("nodes") / "events", 200, seed=7)


def _sacct(job_id: str, *extra: str) -> list[tuple[str, str]]:
    """The job's allocation records (State, NodeList), oldest first."""
    out = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-o", "State,NodeList", "-j", job_id, *extra],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [tuple(line.split("|")) for line in out.splitlines() if line]  # type: ignore[misc]


def _ended(job_id: str, timeout_s: float = 240) -> str:
    """The job's final state (its last allocation record: after a resize or a requeue)."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        rows = _sacct(job_id)
        state = rows[-1][0].split()[0] if rows else "PENDING"
        if state not in ("PENDING", "RUNNING", "COMPLETING", "REQUEUED", "RESIZING"):
            return state
        time.sleep(1)
    raise AssertionError(f"job {job_id} did not end: {_sacct(job_id)}")


def _job_id(study: Path) -> str:
    return json.loads((study / "manifest.json").read_text())["jobs"][0]["job_id"]


def _submit(study: Path, data: Path, *train: str, wait: bool, timeout: int = 600):  # type: ignore[no-untyped-def]
    res = cli(
        "submit", *SITE, "--data", str(data), "--study", str(study),
        "--wait" if wait else "--no-wait", *train, timeout=timeout,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    return res


def _wait_for_syncs(job: Path, count: int, timeout_s: float = 300) -> None:
    """Until every rank has allreduced ``count`` times."""
    deadline = time.time() + timeout_s
    while not all(
        (job / f"rank-{r}.jsonl").exists()
        and (job / f"rank-{r}.jsonl").read_text().count('"kind": "sync"') >= count
        for r in (0, 1)
    ):
        summary = job / "summary.json"
        assert not summary.exists(), f"the job ended early: {summary.read_text()[:600]}"
        assert time.time() < deadline, "the job never trained"
        time.sleep(0.3)


def _check_ran_on_both_nodes(job: Path, summary: dict) -> None:
    """Two host names in the records, the allreduce across them, the nodes in the summary."""
    assert summary["hosts"] == HOSTS
    assert summary["provenance"]["nodes"] == ["n1", "n2"]
    assert summary["provenance"]["rendezvous"].split(":")[0] == "n1"  # the first node
    local = []
    for rank, host in HOSTS.items():
        rows = read_records(job / f"rank-{rank}.jsonl")
        assert {r["host"] for r in rows} == {host}
        local.append({r["step"]: r["loss"] for r in rows if r["kind"] == "step"})
    synced = [r for r in read_records(job / "rank-0.jsonl") if r["kind"] == "sync"]
    assert len(synced) == summary["steps"] > 0
    for row in synced:  # the global loss is the mean of the two nodes' local losses
        mean = (local[0][row["step"]] + local[1][row["step"]]) / 2
        assert row["global_loss"] == pytest.approx(mean, rel=1e-4)


@pytest.mark.parametrize("engine", ["torch", "horovod"])
def test_two_nodes_train_one_job(engine, nodes, events, tmp_path):
    """`submit --nodes 2`: one rank per node (torch.distributed over Gloo, or Horovod's Gloo
    with its rendezvous from the job environment), then `collect` through sacct."""
    if engine == "horovod":
        pytest.importorskip(
            "horovod.torch", reason="Horovod is not installed; bash scripts/build-horovod.sh"
        )
    study = tmp_path / "study"
    t0 = time.monotonic()
    _submit(study, events, "--model", "jishnet-small", "--engine", engine, "--epochs", "1",
            "--no-stop-at-target", wait=True)  # fmt: skip
    wall = time.monotonic() - t0
    job, job_id = study / "jobs" / "2r", _job_id(study)
    summary = json.loads((job / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["world_size"] == 2
    prov = summary["provenance"]
    assert (prov["engine"], prov["launcher"], prov["job_id"]) == (engine, "srun", job_id)
    _check_ran_on_both_nodes(job, summary)
    assert _ended(job_id) == "COMPLETED" and _sacct(job_id)[-1][1] == "n[1-2]"
    print(
        f"\n2-node {engine}: hosts {summary['hosts']}, submit-to-summary {wall:.1f} s, "
        f"DLT {summary['dlt_s']:.1f} s, {summary['steps']} steps, steady step "
        f"{summary['steady_step_s'] * 1000:.0f} ms, {summary['samples_per_s']:.1f} images/s"
    )
    # collect asks sacct how a job without a summary ended, and makes one from the records.
    (job / "summary.json").unlink()
    res = cli("collect", str(study), timeout=120)
    assert res.returncode == 0 and "completed" in res.stdout, res.stdout + res.stderr
    made = json.loads((job / "summary.json").read_text())
    assert made["scheduler_state"] == "completed" and made["status"] == "completed"
    assert made["written_by"].startswith("collect") and made["hosts"] == HOSTS


# Every registered workload but JishNet (the test above), by its small preset.
OTHER_WORKLOADS = sorted(
    name
    for name, module in workloads.MODELS.items()
    if name.endswith("-small") and module != workloads.MODELS["jishnet"]
)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):  # type: ignore[no-untyped-def]
    """One small data set per kind, made on first use (LArTPC events at 400 × 400, the least
    that SCNet's poolings take)."""
    made: dict[str, Path] = {}

    def get(model: str) -> Path:
        kind = workloads.data_kind(model)
        if kind not in made:
            folder = tmp_path_factory.mktemp(kind) / kind
            events = 200 if kind == "lartpc" else 800
            workloads.generator(model)(folder, events, seed=3, workers=2, resolution=400)
            made[kind] = folder
        return made[kind]

    return get


@pytest.mark.parametrize("model", OTHER_WORKLOADS)
def test_every_workload_trains_on_two_nodes(model, nodes, datasets, tmp_path):
    study = tmp_path / "study"
    _submit(study, datasets(model), "--model", model, "--epochs", "1", "--no-stop-at-target",
            wait=True)  # fmt: skip
    job = study / "jobs" / "2r"
    summary = json.loads((job / "summary.json").read_text())
    assert summary["status"] == "completed", summary.get("failure")
    assert summary["model"] == model and summary["world_size"] == 2
    _check_ran_on_both_nodes(job, summary)


def test_a_lost_node_fails_the_job_and_a_resubmit_completes_it(nodes, events, tmp_path):
    """n2 lost mid-job (its slurmd, step daemon and rank killed at once): the rank on n1 stops
    within the collective timeout with its records whole, Slurm fails the job once it finds the
    node gone (SlurmdTimeout), the summary names the lost rank and node; with n2 back, a
    re-submit of the study completes it."""
    study, timeout_s = tmp_path / "study", 60
    train = ("--model", "jishnet-small", "--epochs", "5", "--no-stop-at-target",
             "--collective-timeout", str(timeout_s))  # fmt: skip
    try:
        _submit(study, events, *train, wait=False)
        job, job_id = study / "jobs" / "2r", _job_id(study)
        _wait_for_syncs(job, 3)
        lost = time.monotonic()
        _nodes("kill", "n2")
        while not (job / "rank-0.status.json").exists():
            assert time.monotonic() - lost < timeout_s, "the rank on n1 did not stop"
            time.sleep(0.2)
        stopped = time.monotonic() - lost
        assert _ended(job_id) == "FAILED"
        print(f"\nn2 lost: the rank on n1 stopped after {stopped:.1f} s, Slurm failed the job "
              f"after {time.monotonic() - lost:.1f} s")  # fmt: skip
    finally:
        _nodes("up")  # n2 back (ReturnToService=2: idle once its slurmd registers)
    res = cli("collect", str(study), timeout=120)
    assert "rank 1 on n2: died without a status" in res.stdout, res.stdout + res.stderr
    summary = json.loads((job / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["hosts"] == HOSTS
    assert (summary["failure"]["rank"], summary["failure"]["host"]) == (1, "n2")
    assert summary["scheduler_state"] == "failed"
    survivor = json.loads((job / "rank-0.status.json").read_text())
    assert survivor["host"] == "n1" and survivor["peer_failure"], survivor
    # The survivor's records are whole: every line parses, every step once, in order.
    path = job / "rank-0.jsonl"
    assert skipped_lines(path) == 0
    rows = read_records(path)
    steps = [r["step"] for r in rows if r["kind"] == "step"]
    syncs = [r["step"] for r in rows if r["kind"] == "sync"]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) >= 3
    assert syncs == steps[: len(syncs)] and len(steps) - len(syncs) <= 1
    assert rows[-1]["kind"] == "end" and rows[-1]["status"] == "failed"

    _submit(study, events, *train, "--resubmit", wait=True)
    summary = json.loads((job / "summary.json").read_text())
    assert summary["status"] == "completed"
    _check_ran_on_both_nodes(job, summary)
    assert [p.name.split(".old-")[0] for p in (study / "jobs").glob("2r.old-*")] == ["2r"]
    res = cli("collect", str(study), timeout=120)
    assert res.returncode == 0 and "completed" in res.stdout, res.stdout + res.stderr


def test_walltime_requeue_resumes_on_both_nodes(nodes, events, tmp_path):
    """Slurm's warning signal (USR2, which `--signal=USR2@120` sends before the time limit; here
    sent now, through Slurm, to every task of the job) → every rank stops after the same step,
    rank 0 checkpoints, submitit requeues the job (`scontrol requeue`) → it starts again on both
    nodes and resumes; every step and sync line appears exactly once across the segments."""
    study = tmp_path / "study"
    _submit(study, events, "--model", "jishnet-small", "--epochs", "5", "--no-stop-at-target",
            wait=False)  # fmt: skip
    job, job_id = study / "jobs" / "2r", _job_id(study)
    try:
        _wait_for_syncs(job, 8)
        subprocess.run(["scancel", "--signal=USR2", job_id], check=True, timeout=60)
        assert _ended(job_id, timeout_s=420) == "COMPLETED"
    finally:
        subprocess.run(["scancel", job_id], check=False)
    print(f"\nrequeue: {_sacct(job_id, '--duplicates')}")
    runs = _sacct(job_id, "--duplicates")
    assert runs == [("REQUEUED", "n[1-2]"), ("COMPLETED", "n[1-2]")], runs
    summary = json.loads((job / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["segments"] == 2
    assert summary["stop_reason"] == "epochs"
    _check_ran_on_both_nodes(job, summary)
    for rank, host in HOSTS.items():
        rows = read_records(job / f"rank-{rank}.jsonl")
        for kind in ("step", "sync"):
            steps = [r["step"] for r in rows if r["kind"] == kind]
            assert steps == list(range(1, summary["steps"] + 1)), (rank, kind)
        (end,) = [r for r in rows if r["kind"] == "segment_end"]
        (start,) = [r for r in rows if r["kind"] == "segment_start"]
        assert start["step"] == end["step"] and start["segment"] == 1
        assert {(r["segment"], r["host"]) for r in rows} == {(0, host), (1, host)}


def test_the_nodes_stop_cleanly_and_start_again(nodes):
    """`.ci/slurm-nodes down` leaves no slurmd, namespace, veth or bridge of theirs behind and
    the one-node cluster as it was; `up` brings both nodes back (idempotent)."""

    def links() -> str:
        return subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout

    def states(partition: str) -> set[str]:
        out = subprocess.run(
            ["sinfo", "-h", "-N", "-p", partition, "-o", "%N %T"], capture_output=True, text=True
        ).stdout
        return {line.rstrip("*~#") for line in out.splitlines()}  # not responding, powered…

    try:
        _nodes("down")
        assert "hpcscale0" not in links() and "veth-n" not in links()
        assert not Path("/run/netns/n1").exists() and not Path("/run/netns/n2").exists()
        slurmds = subprocess.run(["pgrep", "-a", "-x", "slurmd"], capture_output=True, text=True)
        assert " -N n" not in slurmds.stdout
        assert states("nodes") == {"n1 down", "n2 down"}
        up = ("idle", "mixed", "allocated", "completing")  # vm: as the other tests left it
        assert {s.split()[1] for s in states("debug")} <= set(up), states("debug")
    finally:
        _nodes("up")
    _nodes("up")
    assert states("nodes") == {"n1 idle", "n2 idle"}
