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
