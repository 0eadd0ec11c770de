"""The horovodrun launcher: Horovod's own launcher starts the ranks under Slurm (the
allocation's hosts) and on this machine (`hpcscale run`), with engine horovod only."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import GOLDEN, check_golden, cli

from hpcscale.plan import Request
from hpcscale.schedulers.jobs import plan_job
from hpcscale.sites import load_file
from hpcscale.submission import study_job

PYTHON = "/opt/venv/bin/python"
NODE = {"cpu": "x", "arch": "x86_64", "sockets": 2, "cores_per_socket": 8, "memory_gb": 64}
SLURM = {
    "scheduler": {"kind": "slurm", "partition": "gpu"},
    "launcher": {"kind": "horovodrun"},
    "engine": "horovod",
    "node": {**NODE, "gpus": {"model": "V100", "count": 4, "memory_gb": 16, "link": "nvlink"}},
    "limits": {"max_nodes": 4, "max_walltime": "04:00:00"},
}
LOCAL = {
    "scheduler": {"kind": "local"},
    "launcher": {"kind": "horovodrun"},
    "engine": "horovod",
    "node": NODE,
    "limits": {"max_nodes": 1, "max_walltime": "01:00:00"},
}


def descriptor(tmp_path: Path, data: dict, name: str = "hvd") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def launch_line(script: str) -> list[str]:
    (line,) = [ln for ln in script.splitlines() if ln.startswith("horovodrun ")]
    return shlex.split(line)


@pytest.mark.parametrize(("gpus", "label"), [(4, "4g"), (8, "8g")])
def test_slurm_script_matches_golden(tmp_path, monkeypatch, regen, gpus, label):
    monkeypatch.setattr(sys, "executable", PYTHON)
    site = load_file(descriptor(tmp_path, SLURM))
    plan = plan_job(site, Request(gpus=gpus))
    _, _, script = study_job(
        site, plan, Path("/scratch/study"), "0123abcd", site.data_dir, None, []
    )
    check_golden(GOLDEN / "scripts" / f"horovodrun-slurm-{label}.sh", script, regen)
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0
    argv = launch_line(script)
    assert argv[:4] == ["horovodrun", "-np", str(gpus), "-H"]
    if gpus == 4:
        assert argv[4] == "localhost:4"
    else:  # the allocation's hosts, 4 slots each (run with Slurm's commands faked below)
        assert argv[4].startswith("$(scontrol show hostnames ")
    assert argv[5:9] == [PYTHON, "-u", "-m", "submitit.core._submit"]
    # horovodrun's ranks are not srun tasks: hpcscale's job environment reads their rank
    assert "export SUBMITIT_EXECUTOR=slurm-mpi" in script.splitlines()


def test_hosts_expand_to_the_allocation_with_slots(tmp_path):
    """The launch line of a 3-node job, run by bash with scontrol and horovodrun faked."""
    site = load_file(descriptor(tmp_path, SLURM))
    plan = plan_job(site, Request(gpus=12))
    (line,) = [ln for ln in study_job(site, plan, Path("/s"), "x", "d", None, [])[2].splitlines()
               if ln.startswith("horovodrun ")]  # fmt: skip
    fake = tmp_path / "bin"
    fake.mkdir()
    for name, body in (
        ("scontrol", "printf 'n1\\nn2\\nn3\\n'"),  # show hostnames: one host a line
        ("horovodrun", 'printf "%s\\n" "$@"'),  # its arguments, one a line
    ):
        (fake / name).write_text(f"#!/bin/sh\n{body}\n")
        (fake / name).chmod(0o755)
    res = subprocess.run(
        ["bash", "-c", line],
        capture_output=True,
        text=True,
        env={"PATH": f"{fake}:/usr/bin:/bin", "SLURM_JOB_NODELIST": "n[1-3]"},
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[:4] == ["-np", "12", "-H", "n1:4,n2:4,n3:4"]


def test_hpcscale_run_starts_the_ranks_with_horovodrun(tmp_path, monkeypatch):
    from hpcscale.run import local_script
    from hpcscale.submission import Point, resolve_job

    monkeypatch.setattr(sys, "executable", PYTHON)
    site = load_file(descriptor(tmp_path, LOCAL))
    job = resolve_job(site, Point(Request(ranks=2)), site.training.model, [])
    script = local_script(site, job, Path("/scratch/events"), Path("/scratch/runs/a"))
    argv = launch_line(script)
    assert argv[:5] == ["horovodrun", "-np", "2", "-H", "localhost:2"]
    assert argv[5:9] == [PYTHON, "-u", "-m", "hpcscale.train"]
    assert argv[argv.index("--engine") + 1] == "horovod"


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"engine": "torch"}, "launcher.kind 'horovodrun' starts Horovod's ranks only, not "
         "engine 'torch'; set engine: horovod"),
        ({"scheduler": {"kind": "lsf"}}, "launcher.kind 'horovodrun' cannot start ranks under "
         "LSF (scheduler.kind 'lsf'); with LSF use one of: jsrun, mpirun, torchrun"),
    ],
)  # fmt: skip
def test_refused_in_one_line_where_it_cannot_start_ranks(tmp_path, change, words):
    path = descriptor(tmp_path, {**SLURM, **change})
    res = cli("sites", "validate", str(path))
    assert res.returncode == 2, res.stdout + res.stderr
    (line,) = res.stderr.strip().splitlines()
    assert str(path) in line and words in line, line
