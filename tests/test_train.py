"""The training core on CPU with real torch, Gloo and Blosc: 2-process runs, gradients, failures."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hpcscale.data.generate import generate  # noqa: E402
from hpcscale.train.records import read_records  # noqa: E402

R = 300
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    folder = tmp_path_factory.mktemp("train") / "events"
    generate(folder, 400, resolution=R, seed=1, workers=2)
    return folder


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn_ranks(world: int, args: list[str], env_extra: dict | None = None):
    port = _free_port()
    procs = []
    for rank in range(world):
        env = {
            **os.environ,
            "RANK": str(rank),
            "WORLD_SIZE": str(world),
            "LOCAL_RANK": str(rank),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "OMP_NUM_THREADS": "1",
            **(env_extra or {}),
        }
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


def test_two_rank_gloo_run_reaches_target(events, tmp_path):
    out = tmp_path / "job"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "hpcscale",
            "run",
            "--ranks",
            "2",
            "--data",
            str(events),
            "--out",
            str(out),
            "--model",
            "jishnet-small",
            "--target-loss",
            "1.45",
            "--ttl-window",
            "10",
            "--epochs",
            "8",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["stop_reason"] == "target"
    assert summary["world_size"] == 2 and summary["loss"] == "paper"
    assert 0 < summary["dlt_s"] < summary["ttl_s"]
    assert summary["epoch_rate_per_min"] > 0 and summary["samples_per_s"] > 0
    assert summary["workload"] == "jishnet" and summary["sample_unit"] == "images"
    assert len(summary["confusion"]) == 5 and summary["val_events"] == 40
    assert set(summary["step_time_split_s"]) == {
        "decompress_s",
        "data_wait_s",
        "h2d_s",
        "compute_s",
        "allreduce_s",
        "update_s",
    }
    assert summary["precision"] == "fp32"  # bf16 is JishNet's default on GPUs only
    assert summary["provenance"]["launcher"] == "torchrun"
    for rank in (0, 1):
        rows = read_records(out / f"rank-{rank}.jsonl")
        steps = [r for r in rows if r["kind"] == "step"]
        syncs = [r for r in rows if r["kind"] == "sync"]
        assert [r["step"] for r in steps] == list(range(1, summary["steps"] + 1))
        assert len(syncs) == len(steps)
        assert all(r["rank"] == rank and r["world"] == 2 for r in rows)
    # The global loss is the mean of the two ranks' local losses, step by step.
    local = [
        {r["step"]: r["loss"] for r in read_records(out / f"rank-{k}.jsonl") if r["kind"] == "step"}
        for k in (0, 1)
    ]
    for row in read_records(out / "rank-0.jsonl"):
        if row["kind"] == "sync":
            assert row["global_loss"] == pytest.approx(
                (local[0][row["step"]] + local[1][row["step"]]) / 2, rel=1e-5
            )
    mlperf = (out / "mlperf.log").read_text()
    for key in (
        "init_start",
        "staging_start",
        "staging_stop",
        "run_start",
        "epoch_start",
        "eval_accuracy",
        "run_stop",
        "global_batch_size",
        "seed",
    ):
        assert f'"key": "{key}"' in mlperf


GRAD_SCRIPT = r"""
import os, sys, json, torch
from hpcscale.train.engine import make_engine
from hpcscale.train.jobenv import detect
from hpcscale.train.sync import GradBucket
from hpcscale.workloads.jishnet.model import JishNet
from hpcscale.workloads.lartpc import loss_fn
torch.manual_seed(0)
x = torch.rand(8, 1, 300, 300); y = torch.arange(8) % 5
model = JishNet(300, "jishnet-small")
env = detect()
engine = make_engine("torch", env, 60, "cpu")
params = list(model.parameters())
flat = GradBucket(params, (), torch.device("cpu")).flat
b = 8 // env.world_size
lo = env.rank * b
loss_fn(model(x[lo:lo + b]), y[lo:lo + b]).backward()
engine.allreduce_mean_(flat)
if env.rank == 0:
    torch.save(flat, sys.argv[1])
engine.shutdown()
"""


def test_two_ranks_average_equals_one_rank_double_batch(tmp_path):
    script = tmp_path / "grads.py"
    script.write_text(GRAD_SCRIPT)
    results = {}
    for world in (1, 2):
        target = tmp_path / f"g{world}.pt"
        port = _free_port()
        procs = [
            subprocess.Popen(
                [sys.executable, str(script), str(target)],
                env={
                    **os.environ,
                    "RANK": str(r),
                    "WORLD_SIZE": str(world),
                    "LOCAL_RANK": str(r),
                    "MASTER_ADDR": "127.0.0.1",
                    "MASTER_PORT": str(port),
                },
            )
            for r in range(world)
        ]
        assert all(p.wait(timeout=120) == 0 for p in procs)
        results[world] = torch.load(target)
    assert results[1].abs().sum() > 0
    torch.testing.assert_close(results[2], results[1], rtol=1e-4, atol=1e-6)


def test_killed_rank_stops_the_other_within_timeout(events, tmp_path):
    out = tmp_path / "job"
    args = [
        "--data",
        str(events),
        "--out",
        str(out),
        "--model",
        "jishnet-small",
        "--epochs",
        "50",
        "--no-stop-at-target",
        "--collective-timeout",
        "20",
    ]
    procs = _spawn_ranks(2, args)
    victim_log = out / "rank-1.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline:
        if victim_log.exists() and victim_log.read_text().count('"kind": "step"') >= 5:
            break
        time.sleep(0.2)
    else:
        pytest.fail("rank 1 never got to step 5")
    procs[1].send_signal(signal.SIGKILL)
    killed_at = time.time()
    rc = procs[0].wait(timeout=60)
    stopped_after = time.time() - killed_at
    assert rc != 0
    assert stopped_after < 20 + 15, f"rank 0 took {stopped_after:.0f} s to notice"
    for rank in (0, 1):
        rows = read_records(out / f"rank-{rank}.jsonl")
        assert [r["step"] for r in rows if r["kind"] == "step"][:5] == [1, 2, 3, 4, 5]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "failed"
    assert summary["failure"]["rank"] == 1
    assert "died without a status" in summary["failure"]["reason"]
    assert any(f["rank"] == 0 and "collective" in f["reason"] for f in summary["failures"])
    host = socket.gethostname()  # every record line says where it ran; so does the summary
    assert summary["hosts"] == {"0": host, "1": host} and summary["failure"]["host"] == host
    for p in procs:
        p.stdout.close()
        p.stderr.close()


def test_bad_data_fails_with_one_line(tmp_path):
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "hpcscale.train",
            "--data",
            str(tmp_path / "nowhere"),
            "--out",
            str(tmp_path / "job"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2  # bad input, found by the rank
    assert "manifest.json: no such file" in res.stderr
    summary = json.loads((tmp_path / "job" / "summary.json").read_text())
    assert (
        summary["failure"]["rank"] == 0
        and "hpcscale data generate" in (summary["failure"]["reason"])
    )


def test_confusion_matrix_and_loss_floor():
    from hpcscale.workloads.jishnet.model import JishNet, feature_side
    from hpcscale.workloads.lartpc import loss_fn

    assert feature_side(3600) == 9 and feature_side(400) == 1
    net = JishNet(3600)
    assert net.fc1.in_features == 20736
    probs = torch.nn.functional.one_hot(torch.arange(5), 5).float()
    floor = loss_fn(probs, torch.arange(5)).item()
    assert floor == pytest.approx(-np.log(np.e / (np.e + 4)), rel=1e-6)  # ≈ 0.905
    uniform = loss_fn(torch.full((5, 5), 0.2), torch.arange(5)).item()
    assert uniform == pytest.approx(np.log(5), rel=1e-6)
