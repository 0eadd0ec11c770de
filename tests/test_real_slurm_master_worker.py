"""The master/worker engine on the real two-node Slurm (`local-nodes`; see
tests/test_real_slurm_nodes.py for how .ci/slurm-up makes it): the master on n1, workers on both
nodes (two ranks per node: a copy of local-nodes with ``workers_per_node: 2``, as a user would
write one); n2 lost mid-job leaves a completed job whose summary names n2's workers, trained on
by the one left on n1."""

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

ROOT = Path(__file__).resolve().parents[1]
NODES_SCRIPT = ROOT / ".ci" / "slurm-nodes"
SITES = ROOT / "sites"


def _nodes(command: str, *args: str) -> None:
    res = subprocess.run(
        ["bash", str(NODES_SCRIPT), command, *args], capture_output=True, text=True, timeout=180
    )
    assert res.returncode == 0, res.stdout + res.stderr


def two_per_node(folder: Path) -> Path:
    """local-nodes with two ranks (of one core each) per node, in a sites folder of its own."""
    folder.mkdir(parents=True)
    text = (SITES / "local-nodes.yaml").read_text()
    text = text.replace("workers_per_node: 1", "workers_per_node: 2")
    text = text.replace("cores_per_socket: 1", "cores_per_socket: 2")
    (folder / "two-per-node.yaml").write_text(text)
    return folder


def test_a_lost_worker_node_leaves_a_completed_job(tmp_path):
    _nodes("up")
    events = tiny_events(tmp_path / "events", 200, seed=7)
    study = tmp_path / "study"
    sites = two_per_node(tmp_path / "sites")
    res = cli(
        *f"submit --site two-per-node --sites-dir {sites} --nodes 2 --engine master-worker".split(),
        *f"--data {events} --study {study} --no-wait --model jishnet-small --epochs 8".split(),
        "--no-stop-at-target",
        timeout=300,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    job = study / "jobs" / "4r"
    job_id = json.loads((study / "manifest.json").read_text())["jobs"][0]["job_id"]
    try:
        deadline = time.time() + 300
        while True:
            pulls = [job / f"rank-{r}.jsonl" for r in (1, 2, 3)]
            if all(p.exists() and p.read_text().count('"kind": "pull"') >= 2 for p in pulls):
                break
            assert time.time() < deadline, "the workers never trained"
            time.sleep(0.3)
        _nodes("kill", "n2")
        deadline = time.time() + 240
        while not (job / "summary.json").exists():
            assert time.time() < deadline, "the master did not finish"
            time.sleep(0.5)
    finally:
        _nodes("up")
        subprocess.run(["scancel", job_id], check=False)
    summary = json.loads((job / "summary.json").read_text())
    assert summary["status"] == "completed", summary["failures"]
    assert summary["hosts"] == {"0": "n1", "1": "n1", "2": "n2", "3": "n2"}
    lost = summary["lost_workers"]
    assert sorted(r for w in lost for r in w["ranks"]) == [2, 3]
    assert all(w["t_s"] > 0 and "10.217.0.12" in w["reason"] for w in lost)
    assert summary["stop_reason"] == "epochs"  # the worker on n1 trained on to the end
    records = read_records(job / "rank-0.jsonl")
    updates = [r for r in records if r["kind"] == "update"]
    assert {r["host"] for r in updates} == {"n1"}
    assert len({r["worker"] for r in updates}) == 3  # every worker's gradients were applied
    after = max(r["t"] for r in records if r["kind"] == "lost")
    on_n1 = {w for w in {r["worker"] for r in updates} if w not in {x["worker"] for x in lost}}
    assert {r["worker"] for r in updates if r["t"] > after} == on_n1 and len(on_n1) == 1
    assert summary["val_accuracy"] is not None
