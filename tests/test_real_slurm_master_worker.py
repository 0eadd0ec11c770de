"""The master/worker engine on the real two-node Slurm (`local-nodes`; see
tests/test_real_slurm_nodes.py for how .ci/slurm-up makes it): the master on n1, a worker on n2;
n2 lost mid-job leaves a completed job whose summary names the lost worker. (Workers on both
nodes would need two ranks on a node; the nodes have one CPU each and this Slurm refuses
--ntasks-per-node=2 there even with --overcommit.)"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from conftest import cli, tiny_events

from hpcscale.train.records import read_records

pytestmark = pytest.mark.slurm
if os.environ.get("HPCSCALE_REAL_SLURM") != "1":
    pytest.skip(
        "needs the real Slurm that .ci/slurm-up starts (HPCSCALE_REAL_SLURM=1)",
        allow_module_level=True,
    )

NODES_SCRIPT = Path(__file__).resolve().parents[1] / ".ci" / "slurm-nodes"


def _nodes(command: str, *args: str) -> None:
    res = subprocess.run(
        ["bash", str(NODES_SCRIPT), command, *args], capture_output=True, text=True, timeout=180
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_a_lost_worker_node_leaves_a_completed_job(tmp_path):
    _nodes("up")
    events = tiny_events(tmp_path / "events", 200, seed=7)
    study = tmp_path / "study"
    res = cli(
        *f"submit --site local-nodes --nodes 2 --engine master-worker --data {events}".split(),
        *f"--study {study} --no-wait --model jishnet-small --epochs 6".split(),
        "--no-stop-at-target",
        timeout=300,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    job = study / "jobs" / "2r"
    job_id = json.loads((study / "manifest.json").read_text())["jobs"][0]["job_id"]
    try:
        deadline = time.time() + 300
        while True:
            log = job / "rank-1.jsonl"
            if log.exists() and log.read_text().count('"kind": "pull"') >= 3:
                break
            assert time.time() < deadline, "the worker never trained"
            time.sleep(0.3)
        _nodes("kill", "n2")
        deadline = time.time() + 120
        while not (job / "summary.json").exists():
            assert time.time() < deadline, "the master did not finish"
            time.sleep(0.5)
    finally:
        _nodes("up")
        subprocess.run(["scancel", job_id], check=False)
    summary = json.loads((job / "summary.json").read_text())
    assert summary["status"] == "completed", summary["failures"]
    assert summary["stop_reason"] == "workers_lost"  # its only worker
    assert summary["hosts"] == {"0": "n1", "1": "n2"}
    (lost,) = summary["lost_workers"]
    assert lost["ranks"] == [1] and lost["t_s"] > 0 and "10.217.0.12" in lost["reason"]
    updates = [r for r in read_records(job / "rank-0.jsonl") if r["kind"] == "update"]
    assert len(updates) >= 3 and {r["host"] for r in updates} == {"n1"}
    assert summary["val_accuracy"] is not None  # the master evaluated what it had
