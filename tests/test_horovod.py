"""The Horovod engine (the paper's), through horovodrun with Gloo on CPU: 2 ranks train and the
summary says which engine and version ran. scripts/build-horovod.sh builds Horovod 0.28.1 for this
test (.ci/run runs it)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from conftest import tiny_events

from hpcscale.train.records import read_records

pytest.importorskip(
    "horovod.torch",
    reason="Horovod is not installed; `bash scripts/build-horovod.sh` builds and installs it "
    "(README, 'Horovod')",
)


def test_two_ranks_under_horovodrun(tmp_path):
    data = tiny_events(tmp_path / "events", 200, seed=8)
    out = tmp_path / "job"
    horovodrun = shutil.which("horovodrun")
    assert horovodrun is not None
    res = subprocess.run(
        [
            horovodrun,
            "-np",
            "2",
            "-H",
            "localhost:2",
            "--gloo",
            sys.executable,
            "-m",
            "hpcscale.train",
            "--engine",
            "horovod",
            "--data",
            str(data),
            "--out",
            str(out),
            "--model",
            "jishnet-small",
            "--epochs",
            "1",
            "--target-loss",
            "1.7",
            "--ttl-window",
            "5",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["world_size"] == 2
    prov = summary["provenance"]
    assert (prov["engine"], prov["horovod"], prov["launcher"]) == (
        "horovod",
        "0.28.1",
        "horovodrun",
    )
    local = [
        {r["step"]: r["loss"] for r in read_records(out / f"rank-{k}.jsonl") if r["kind"] == "step"}
        for k in (0, 1)
    ]
    for row in read_records(out / "rank-0.jsonl"):
        if row["kind"] == "sync":  # Horovod's Average is the mean of the local losses
            assert row["global_loss"] == pytest.approx(
                (local[0][row["step"]] + local[1][row["step"]]) / 2, rel=1e-5
            )


# -- engine equivalence ---------------------------------------------------------------------------
def _losses(out) -> dict[int, tuple[float, float]]:
    """step → (rank 0's local loss, the rank-averaged loss) from rank 0's records."""
    rows = list(read_records(out / "rank-0.jsonl"))
    local = {r["step"]: r["loss"] for r in rows if r["kind"] == "step"}
    return {r["step"]: (local[r["step"]], r["global_loss"]) for r in rows if r["kind"] == "sync"}


def _train(launch: list[str], engine: str, model: str, data, out, tmp_path) -> dict:
    args = [
        *launch, sys.executable, "-m", "hpcscale.train", "--engine", engine, "--model", model,
        "--data", str(data), "--out", str(out), "--seed", "5", "--device", "cpu",
        "--epochs", "0.5", "--no-stop-at-target", "--max-events", "96", "--batch", "4",
        "--ttl-window", "2",
    ]  # fmt: skip
    if engine == "horovod":
        args.append("--horovod-timeline")
    res = subprocess.run(args, capture_output=True, text=True, timeout=400, cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[:3000]
    return _losses(out)


@pytest.mark.parametrize("model", ["jishnet-small", "scnet-small", "3dgan-small", "cms-jets-small"])
def test_torch_distributed_and_horovod_give_the_same_loss_curve(tmp_path, model):
    """Same seed, same data, 2 ranks: torch.distributed (Gloo) and Horovod (Gloo) produce the
    same losses step for step, for every workload in the registry."""
    from hpcscale import workloads

    assert {m.removesuffix("-small") for m in workloads.names()} == {
        "jishnet", "scnet", "3dgan", "cms-jets"
    }, "a new workload: add its small preset to this test"  # fmt: skip
    data = tmp_path / "data"
    workloads.generator(model)(data, 120, seed=2, workers=2, resolution=400)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc-per-node=2", "--no-python"]  # fmt: skip
    horovodrun = [shutil.which("horovodrun") or "horovodrun", "-np", "2", "-H", "localhost:2",
                  "--gloo"]  # fmt: skip
    torch_curve = _train(torchrun, "torch", model, data, tmp_path / "torch", tmp_path)
    hvd_curve = _train(horovodrun, "horovod", model, data, tmp_path / "hvd", tmp_path)
    assert len(torch_curve) >= 5 and torch_curve.keys() == hvd_curve.keys()
    for step, (local, mean) in torch_curve.items():
        assert hvd_curve[step] == pytest.approx((local, mean), rel=1e-4, abs=1e-6), step
    # Horovod's timeline (Chrome trace format), written by the coordinator, names our allreduce
    timeline = json.loads((tmp_path / "hvd" / "horovod-timeline.json").read_text())
    names = {e.get("args", {}).get("name") for e in timeline if e.get("name") == "process_name"}
    assert "allreduce.hpcscale.flat" in names


# -- srun without MPI: the Gloo rendezvous from the job environment -----------------------------
def _jobenv(rank: int, world: int, local: int, nodes: tuple[str, ...], launcher: str = "srun"):  # type: ignore[no-untyped-def]
    from hpcscale.train.jobenv import JobEnvironment

    return JobEnvironment(launcher, rank, world, local, nodes[0], 31000, "7", nodes)


def test_srun_ranks_get_horovodrun_s_slots_from_the_node_list():
    """Under srun, a Horovod without MPI gets what horovodrun would give each rank: block
    slots over the allocation's nodes and the rendezvous store on the first node."""
    from hpcscale.train.engine import horovod_gloo

    nodes = ("n1", "n2")
    assert horovod_gloo.needed(_jobenv(0, 4, 0, nodes), mpi_built=False)
    assert not horovod_gloo.needed(_jobenv(0, 4, 0, nodes, "horovodrun"), mpi_built=False)
    assert not horovod_gloo.needed(_jobenv(0, 4, 0, nodes, "openmpi"), mpi_built=True)
    assert not horovod_gloo.needed(_jobenv(0, 1, 0, nodes[:1]), mpi_built=False)
    plan = horovod_gloo.slots(_jobenv(0, 4, 0, nodes))
    env = horovod_gloo.environment(_jobenv(3, 4, 1, nodes), plan[3], "10.0.0.1")
    want = {
        "HOROVOD_HOSTNAME": "n2", "HOROVOD_RANK": "3", "HOROVOD_LOCAL_RANK": "1",
        "HOROVOD_LOCAL_SIZE": "2", "HOROVOD_CROSS_RANK": "1", "HOROVOD_CROSS_SIZE": "2",
        "HOROVOD_GLOO_RENDEZVOUS_ADDR": "10.0.0.1", "HOROVOD_GLOO_RENDEZVOUS_PORT": "31000",
        "HOROVOD_CONTROLLER": "gloo", "HOROVOD_CPU_OPERATIONS": "gloo",
    }  # fmt: skip
    assert {k: env[k] for k in want} == want
    # 3 ranks on 2 nodes: the last node short, as srun's block distribution places them
    three = horovod_gloo.slots(_jobenv(0, 3, 0, nodes))
    assert [(s.hostname, s.size) for s in three] == [("n1", 3), ("n1", 3), ("n2", 3)]
    with pytest.raises(RuntimeError, match="block distribution"):  # a cyclic placement
        horovod_gloo.environment(_jobenv(1, 4, 0, nodes), plan[1], "10.0.0.1")
