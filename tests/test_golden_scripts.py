"""Golden job scripts: every bundled site at two sizes, through one parametrized fixture. The
script is the one `submit` submits (and `render` and `submit --dry-run` print): the same
function makes it, here for a study in /scratch/study."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import GOLDEN, check_golden

from hpcscale.plan import Request
from hpcscale.schedulers.jobs import plan_job
from hpcscale.sites import load_site, site_files
from hpcscale.sites.detect import resolve
from hpcscale.submission import study_job

STUDY = Path("/scratch/study")
PYTHON = "/opt/venv/bin/python"  # not this machine's interpreter: goldens are portable

BUNDLED = sorted(site_files())


def _requests(site_name: str) -> list[tuple[str, Request]]:
    site = resolve(load_site(site_name))
    assert site.node is not None
    if site.scheduler.kind == "local" or load_site(site_name).detect:
        return [("1r", Request(ranks=1)), ("2r", Request(ranks=2))]
    if site.node.gpus:
        n = site.node.gpus.count
        return [(f"{n}g", Request(gpus=n)), (f"{2 * n}g", Request(gpus=2 * n))]
    return [("1n", Request(nodes=1)), ("2n", Request(nodes=2))]


CASES = [
    pytest.param(name, size, id=f"{name}-{size}") for name in BUNDLED for size in ("small", "large")
]


@pytest.mark.parametrize(("site_name", "size"), CASES)
def test_job_script_matches_golden(site_name, size, fixed_local, regen, monkeypatch):
    monkeypatch.setattr(sys, "executable", PYTHON)
    site = resolve(load_site(site_name))
    label, request = _requests(site_name)[0 if size == "small" else 1]
    plan = plan_job(site, request)
    _, _, script = study_job(site, plan, STUDY, "0123abcd", site.data_dir, None, [])
    check_golden(GOLDEN / "scripts" / f"{site_name}-{label}.sh", script, regen)


@pytest.mark.parametrize("ranks", [1, 2])
def test_local_run_script_matches_golden(ranks, fixed_local, regen, monkeypatch):
    """`hpcscale run` runs the local site's own template (not submitit): its script too."""
    from hpcscale.run import local_script
    from hpcscale.submission import Point, resolve_job

    monkeypatch.setattr(sys, "executable", PYTHON)
    site = resolve(load_site("local"))
    job = resolve_job(site, Point(Request(ranks=ranks)), site.training.model, [])
    script = local_script(site, job, Path("/scratch/events"), Path("/scratch/runs/first"))
    check_golden(GOLDEN / "scripts" / f"local-run-{ranks}r.sh", script, regen)


def test_every_bundled_site_is_covered():
    names = {p.name.rsplit("-", 1)[0] for p in (GOLDEN / "scripts").glob("*.sh")}
    names.discard("local-run")
    assert set(BUNDLED) <= names
    assert {"summitdev", "stampede2", "pizdaint", "pnnl", "titan", "endeavour", "local"} <= set(
        BUNDLED
    )


SETUP = ["module purge", "source /path/venv/bin/activate", "conda activate hpcscale-env"]
NODE_PYTHON = "/path/venv/bin/python"


def _one_site_per_scheduler() -> list[str]:
    kinds: dict[str, str] = {}
    for name in BUNDLED:
        kinds.setdefault(load_site(name).scheduler.kind, name)
    return sorted(kinds.values())


@pytest.mark.parametrize("site_name", _one_site_per_scheduler())
def test_setup_lines_and_python_in_every_scheduler(site_name, fixed_local, regen, monkeypatch):
    """A descriptor's ``setup:`` lines run before the ranks, and its ``python:`` runs them."""
    monkeypatch.setattr(sys, "executable", PYTHON)
    base = load_site(site_name)
    container = base.container.model_copy(update={"enabled": False})
    site = resolve(
        base.model_copy(update={"setup": SETUP, "python": NODE_PYTHON, "container": container})
    )
    label, request = _requests(site_name)[0]
    plan = plan_job(site, request)
    _, _, script = study_job(site, plan, STUDY, "0123abcd", site.data_dir, None, [])
    lines = script.splitlines()
    at = [lines.index(line) for line in SETUP]
    assert at == sorted(at)
    rank = max(i for i, line in enumerate(lines) if "submitit.core._submit" in line)
    assert f"{NODE_PYTHON} -u -m submitit.core._submit" in lines[rank]
    # the ranks start after the setup (local: submitit runs the lines, then the rank command
    # that the script's head names)
    assert at[-1] < rank or lines[rank].startswith("# starts")
    assert PYTHON not in script
    check_golden(GOLDEN / "scripts" / "setup" / f"{site_name}-{label}.sh", script, regen)
