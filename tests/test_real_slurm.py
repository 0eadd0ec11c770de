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


def test_submit_and_collect_on_real_slurm(tmp_path, monkeypatch):
    data = tiny_events(tmp_path / "events", 200, seed=5)
    study = tmp_path / "study"
    # --data as a cluster user writes it (like a descriptor's `data_dir: ${SCRATCH}/lartpc`):
    # the ranks expand it from the job's environment, which sbatch passes on.
    monkeypatch.setenv("HPCSCALE_TEST_SCRATCH", str(tmp_path))
    args = "submit --site local-slurm --ranks 1,2 --data ${HPCSCALE_TEST_SCRATCH}/events"
    args += f" --study {study} --wait"
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
        assert summary["data"]["folder"] == str(data)
        for key in ("dlt_s", "ttl_s", "epoch_rate_per_min"):
            assert summary[key] is not None and summary[key] > 0, key
    res = subprocess.run(
        [sys.executable, "-m", "hpcscale", "collect", str(study)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0 and res.stdout.count("completed") == 2


def _real_sbatch_accepts(script: str, tmp_path) -> bool:
    path = tmp_path / "job.sh"
    path.write_text(script)
    res = subprocess.run(["sbatch", "--test-only", str(path)], capture_output=True, text=True)
    return res.returncode == 0


def test_real_sbatch_accepts_the_request_fields(tmp_path):
    """What `render` writes for the request options is what the real sbatch takes (--test-only:
    checked against this cluster, nothing submitted)."""
    host = subprocess.run(
        ["sinfo", "-h", "-o", "%n"], capture_output=True, text=True, check=True
    ).stdout.split()[0]
    for args in (
        ["--threads-per-core", "1", "--cpus-per-task", "1", "--nodelist", host],
        ["--walltime", "00:00:30", "--ranks", "1"],
    ):
        ranks = [] if "--ranks" in args else ["--ranks", "2"]
        res = cli("render", "--site", "local-slurm", *ranks, *args, "--study", str(tmp_path))
        assert res.returncode == 0, res.stderr
        assert _real_sbatch_accepts(res.stdout, tmp_path), (args, res.stdout)


@pytest.mark.parametrize(
    "header",
    [
        "#SBATCH --foo=1\n",
        "#SBATCH --time=01:30:45:00\n",
        "#SBATCH --nodes=1\n#SBATCH --ntasks=5\n#SBATCH --ntasks-per-node=2\n",
        "#SBATCH --time=1\n",
        "#SBATCH --time=1\n#SBATCH #DW jobdw x\n",
    ],
)
def test_fake_sbatch_refuses_what_the_real_one_refuses(header, tmp_path, monkeypatch):
    import importlib
    from pathlib import Path

    monkeypatch.setenv("FAKESCHED_DIR", str(tmp_path))
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    sys.modules.pop("fakesched", None)
    fake = importlib.import_module("fakesched")
    script = f"#!/bin/bash\n{header}true\n"
    assert (fake.check_sbatch(script) is None) == _real_sbatch_accepts(script, tmp_path)
