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
        "launchers/jsrun.j2",
        "containers/apptainer.j2",
    ):
        assert f"hpcscale/_data/templates/{template}" in names
    assert any(n.startswith("hpcscale/_data/containers/") for n in names)
