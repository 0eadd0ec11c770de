"""The wheel carries sites/, templates/ and containers/, so hpcscale works outside the repo."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_ships_package_data(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("hpcscale-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for site in ("summitdev", "stampede2", "pizdaint", "pnnl", "titan", "endeavour", "local"):
        assert f"hpcscale/_data/sites/{site}.yaml" in names
    for template in (
        "job.sh.j2",
        "schedulers/slurm.j2",
        "schedulers/torque.j2",
        "nodes/pbs.j2",
        "launchers/jsrun.j2",
        "containers/apptainer.j2",
    ):
        assert f"hpcscale/_data/templates/{template}" in names
    assert any(n.startswith("hpcscale/_data/containers/") for n in names)
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    for executor in ("lsf:LsfExecutor", "pbs:PbsExecutor", "torque:TorqueExecutor"):
        assert f"hpcscale.schedulers.{executor}" in text


def test_submitit_finds_every_executor_and_the_job_environment():
    """submitit's own plugin loader (its `submitit` entry-point group) sees hpcscale's LSF, PBS
    and Torque executors, and the job environment that serves their jobs."""
    code = (
        "from submitit.core import plugins; "
        "print(sorted(plugins.get_executors()), sorted(plugins.get_job_environments()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    executors, environments = out.split("] [")
    for name in ("lsf", "pbs", "torque", "slurm", "local"):
        assert f"'{name}'" in executors
    assert "'site'" in environments
