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
from pathlib import Path

import pytest
from conftest import cli, rank_pids, tiny_events

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
        ["--walltime", "00:03:30", "--ranks", "1"],
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


def _rank_pids(job: Path) -> dict[int, int]:
    """The PIDs of a job's ranks on this machine, by SLURM_PROCID."""
    pids = rank_pids(job)
    found = {}
    for pid in pids:
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for item in env:
            if item.startswith(b"SLURM_PROCID="):
                found[int(item.split(b"=")[1])] = int(pid)
    return found


def _training(tmp_path, study, ranks: int):  # type: ignore[no-untyped-def]
    """Submit a long local-slurm job of ``ranks`` ranks and wait until every rank trains."""
    tiny_events(tmp_path / "events", 200, seed=6)
    res = cli(
        *f"submit --site local-slurm --ranks {ranks} --data {tmp_path / 'events'}".split(),
        *f"--study {study} --no-wait --model jishnet-small --epochs 200".split(),
        "--no-stop-at-target",
        cwd=tmp_path,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    job = study / "jobs" / f"{ranks}r"
    deadline = time.time() + 600  # a shared CI machine: the node may be busy
    while not all(
        (job / f"rank-{r}.jsonl").exists()
        and (job / f"rank-{r}.jsonl").read_text().count('"kind": "step"') >= 3
        for r in range(ranks)
    ):
        summary = job / "summary.json"
        assert not summary.exists(), f"the job ended early: {summary.read_text()[:600]}"
        assert time.time() < deadline, "the job never trained"
        time.sleep(0.5)
    return job, json.loads((study / "manifest.json").read_text())["jobs"][0]["job_id"]


def _ended(job_id: str) -> str:
    for _ in range(240):
        state = subprocess.run(
            ["sacct", "-n", "-X", "-P", "-o", "State", "-j", job_id],
            capture_output=True,
            text=True,
        ).stdout.split()
        if state and state[0] not in ("PENDING", "RUNNING", "COMPLETING", "REQUEUED"):
            return state[0]
        time.sleep(1)
    raise AssertionError(f"job {job_id} did not end")


def test_a_killed_rank_leaves_a_summary_that_names_it(tmp_path):
    study = tmp_path / "study"
    job, job_id = _training(tmp_path, study, ranks=2)
    try:
        pids = _rank_pids(job)
        assert sorted(pids) == [0, 1], pids
        os.kill(pids[1], 9)  # the OOM killer, or a node's hardware
        assert _ended(job_id) in ("FAILED", "CANCELLED")
    finally:
        subprocess.run(["scancel", job_id], check=False)
    res = cli("collect", str(study), timeout=120)
    summary = json.loads((job / "summary.json").read_text())
    assert summary["status"] == "failed", summary
    assert summary["failure"]["rank"] == 1, summary["failure"]
    assert "died without a status" in summary["failure"]["reason"]
    assert "rank 1" in res.stdout + res.stderr
    # The survivor's records are whole: every line parses, steps without gaps.
    from hpcscale.train.records import read_records, skipped_lines

    assert skipped_lines(job / "rank-0.jsonl") == 0
    steps = [r["step"] for r in read_records(job / "rank-0.jsonl") if r["kind"] == "step"]
    assert steps == list(range(1, len(steps) + 1))


def test_a_cancelled_job_is_reported_cancelled(tmp_path):
    study = tmp_path / "study"
    job, job_id = _training(tmp_path, study, ranks=1)
    try:
        res = cli("cancel", str(study), timeout=120)
        assert res.returncode == 0 and f"cancelled job {job_id}" in res.stdout, res.stdout
        assert _ended(job_id) == "CANCELLED"
    finally:
        subprocess.run(["scancel", job_id], check=False)
    res = cli("status", str(study), timeout=120)
    assert res.returncode == 0 and "cancelled" in res.stdout, res.stdout
    summary = json.loads((job / "summary.json").read_text())
    assert summary["status"] == "cancelled", summary


def test_optimize_on_real_slurm_resumes_without_new_jobs(tmp_path):
    """Two GP trials side by side through the real sbatch; run again, nothing is submitted."""
    data = tiny_events(tmp_path / "events", 120, seed=6)
    (tmp_path / "lr.yaml").write_text("lr: {low: 1.0e-4, high: 1.0e-1, log: true}\n")
    args = ["optimize", "--site", "local-slurm", "--ranks", "1", "--space", "lr.yaml",
            "--trials", "2", "--parallel", "2", "--data", str(data), "--study", "opt",
            "--model", "jishnet-small", "--epochs", "1", "--ttl-window", "3"]  # fmt: skip
    res = cli(*args, cwd=tmp_path, timeout=900)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "best: trial t00" in res.stdout and "[2/2]" in res.stdout
    manifest = json.loads((tmp_path / "opt" / "manifest.json").read_text())
    assert manifest["kind"] == "optimize" and len(manifest["jobs"]) == 2
    assert all(j["state"] == "completed" and j["value"] is not None for j in manifest["jobs"])
    ids = [j["job_id"] for j in manifest["jobs"]]
    res = cli("optimize", "--study", "opt", cwd=tmp_path, timeout=300)
    assert res.returncode == 0 and "resuming: 2 of 2 trials finished" in res.stdout, res.stderr
    again = json.loads((tmp_path / "opt" / "manifest.json").read_text())
    assert [j["job_id"] for j in again["jobs"]] == ids  # no trial ran again


def test_setup_lines_and_python_on_real_slurm(tmp_path):
    """A descriptor's ``setup:`` lines run in the batch job before the ranks, and its
    ``python:`` is the interpreter that runs them (issue 31)."""
    tiny_events(tmp_path / "events", 60, seed=5)
    sites = tmp_path / "sites"
    sites.mkdir()
    text = (Path(__file__).parents[1] / "sites" / "local-slurm.yaml").read_text()
    mark = tmp_path / "setup-ran"
    setup = f"setup: ['export HPCSCALE_TEST_MARK=on', 'echo $HPCSCALE_TEST_MARK > {mark}']\n"
    (sites / "mine-slurm.yaml").write_text(text + setup + f"python: {sys.executable}\n")
    res = cli("submit", "--site", "mine-slurm", "--sites-dir", str(sites), "--ranks", "1",
              "--data", str(tmp_path / "events"), "--study", str(tmp_path / "study"), "--wait",
              "--model", "jishnet-small", "--epochs", "1", cwd=tmp_path, timeout=900)  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    assert mark.read_text().strip() == "on"
    script = (tmp_path / "study" / "jobs" / "1r" / "job.sh").read_text()
    assert f"{sys.executable} -u -m submitit.core._submit" in script
    summary = json.loads((tmp_path / "study" / "jobs" / "1r" / "summary.json").read_text())
    assert summary["status"] == "completed"
