"""Against a real one-node Slurm (slurm-wlm + munge + slurmdbd, started by .ci/slurm-up):
`hpcscale submit --site local-slurm` for 1 and 2 ranks (a 2-task srun step training with Gloo),
then `hpcscale collect`. CI runs it (.ci/run sets HPCSCALE_REAL_SLURM=1 after starting Slurm);
elsewhere: `bash .ci/slurm-up && HPCSCALE_REAL_SLURM=1 python -m pytest -m slurm`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from conftest import cli, tiny_events

pytestmark = pytest.mark.slurm
if os.environ.get("HPCSCALE_REAL_SLURM") != "1":
    pytest.skip(
        "needs the real Slurm that .ci/slurm-up starts (HPCSCALE_REAL_SLURM=1)",
        allow_module_level=True,
    )


def test_submit_and_collect_on_real_slurm(tmp_path):
    data = tiny_events(tmp_path / "events", 200, seed=5)
    study = tmp_path / "study"
    args = f"submit --site local-slurm --ranks 1,2 --data {data} --study {study} --wait"
    train = "--model jishnet-small --target-loss 1.7 --ttl-window 5 --epochs 2"
    res = cli(*args.split(), *train.split(), cwd=tmp_path, timeout=900)
    assert res.returncode == 0, res.stdout + res.stderr
    manifest = json.loads((study / "manifest.json").read_text())
    for job in manifest["jobs"]:
        assert job["state"] == "completed", job
        states: list[str] = []
        for _ in range(120):  # the summary comes before the job ends; accounting lags
            states = subprocess.run(
                ["sacct", "-n", "-X", "-P", "-o", "State", "-j", job["job_id"]],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            if states and states[0] not in ("PENDING", "RUNNING", "COMPLETING"):
                break
            time.sleep(1)
        assert states == ["COMPLETED"]
    for label, ranks in (("1r", 1), ("2r", 2)):
        summary = json.loads((study / "jobs" / label / "summary.json").read_text())
        assert summary["status"] == "completed" and summary["world_size"] == ranks
        assert summary["provenance"]["launcher"] == "srun"
        for key in ("dlt_s", "ttl_s", "epoch_rate_per_min"):
            assert summary[key] is not None and summary[key] > 0, key
    res = subprocess.run(
        [sys.executable, "-m", "hpcscale", "collect", str(study)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0 and res.stdout.count("completed") == 2
