"""The registries (one idiom for every axis): the descriptor's names are the registries' names,
listing them loads no entry, every entry loads under its own name, an unknown name is one line
with the allowed names, and every place that changes a site asks the same refusals."""

from __future__ import annotations

import subprocess
import sys
from typing import get_args

import pytest

from hpcscale.analysis.studies.registry import STUDY_KINDS
from hpcscale.containers.runtimes.registry import RUNTIMES
from hpcscale.errors import UnknownNameError, UserError
from hpcscale.launchers.registry import LAUNCHERS
from hpcscale.resources import resource_dir
from hpcscale.schedulers.registry import FLAVOURS, SCHEDULERS
from hpcscale.sites import load_site
from hpcscale.sites.detect import resolve
from hpcscale.sites.models import EngineKind, LauncherKind, RuntimeKind, SchedulerKind, Site
from hpcscale.sites.refusals import refusals
from hpcscale.sites.registry import with_requests
from hpcscale.sites.switch import switched
from hpcscale.train.config import CoreConfig
from hpcscale.train.engine.registry import ENGINES

ALL = [SCHEDULERS, LAUNCHERS, RUNTIMES, ENGINES, STUDY_KINDS]


def test_descriptor_literals_are_the_registries_names():
    # torque is a backend that scheduler.kind pbs picks by pbs_flavor, not a kind of its own
    assert set(get_args(SchedulerKind)) == set(SCHEDULERS.names()) - set(FLAVOURS)
    assert set(FLAVOURS.values()) <= set(get_args(SchedulerKind))
    assert set(get_args(LauncherKind)) == set(LAUNCHERS.names())
    assert set(get_args(RuntimeKind)) == set(RUNTIMES.names())
    assert set(get_args(EngineKind)) == set(ENGINES.names())
    core_engine = CoreConfig.model_fields["engine"].annotation
    assert set(get_args(core_engine)) == set(ENGINES.names())  # the training core's --engine


def test_listing_and_checking_names_loads_no_entry():
    code = (
        "import sys\n"
        "from hpcscale.schedulers.registry import SCHEDULERS\n"
        "from hpcscale.launchers.registry import LAUNCHERS\n"
        "from hpcscale.containers.runtimes.registry import RUNTIMES\n"
        "from hpcscale.train.engine.registry import ENGINES\n"
        "from hpcscale.analysis.studies.registry import STUDY_KINDS\n"
        "for r in (SCHEDULERS, LAUNCHERS, RUNTIMES, ENGINES, STUDY_KINDS):\n"
        "    [r.check(n) for n in r.names()]\n"
        "    assert not [m for m in r.table.values() if m in sys.modules], r.axis\n"
        "heavy = ('torch', 'horovod', 'matplotlib', 'submitit', 'jinja2', 'numpy', 'hpccm')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


@pytest.mark.parametrize("registry", ALL, ids=lambda r: r.axis)
def test_every_entry_loads_under_its_own_name(registry):
    for name in registry.names():
        assert registry.get(name).name == name


def test_launchers_and_runtimes_own_their_templates():
    templates = resource_dir("templates")
    for name in LAUNCHERS.names():
        launcher = LAUNCHERS.get(name)
        assert (templates / launcher.template).is_file(), name
        assert launcher.schedulers <= set(SCHEDULERS.names()), name
    for name in RUNTIMES.names():
        runtime = RUNTIMES.get(name)
        assert (templates / runtime.template).is_file(), name
        assert runtime.prepare is None or (templates / runtime.prepare).is_file(), name
    # every scheduler has a launcher that starts ranks under it
    for backend in SCHEDULERS.names():
        assert any(backend in LAUNCHERS.get(n).schedulers for n in LAUNCHERS.names()), backend


def test_unknown_name_is_one_user_error_with_the_allowed_names():
    with pytest.raises(UnknownNameError) as info:
        LAUNCHERS.get("sruun")
    message = str(info.value)
    assert isinstance(info.value, UserError)
    assert message.startswith("launcher.kind 'sruun': no launcher of that name; allowed: srun")
    assert "(did you mean 'srun'?)" in message
    engines = r"no engine of that name.*torch, horovod, master-worker$"
    with pytest.raises(UnknownNameError, match=engines):
        ENGINES.check("tensorflow")


def _site(**changes: object) -> Site:
    data = load_site("local-slurm").model_dump(exclude_defaults=True)
    data.update(changes)
    return Site.model_validate(data)


def test_refusals_gather_scheduler_launcher_and_runtime():
    site = _site(
        launcher={"kind": "jsrun"},
        container={"runtime": "charliecloud", "image": "docker://x:1"},
        scheduler={"kind": "slurm", "qos": "low", "gpu_request": "gres"},
    )
    problems = refusals(site)
    assert problems[0].startswith("launcher.kind 'jsrun' cannot start ranks under Slurm")
    under_slurm = sorted(n for n in LAUNCHERS if "slurm" in LAUNCHERS.get(n).schedulers)
    assert {"srun", "mpirun", "ibrun", "torchrun"} <= set(under_slurm)
    assert problems[0].endswith(f"use one of: {', '.join(under_slurm)}")
    assert any("not a registry reference" in p for p in problems)
    assert refusals(load_site("local-slurm")) == []


def test_every_place_that_changes_a_site_asks_the_same_refusals():
    site = load_site("local")
    with pytest.raises(UserError, match=r"^--partition: scheduler.partition 'gpu': the local"):
        with_requests(site, partition="gpu")
    slurm = load_site("local-slurm")
    with pytest.raises(UserError, match=r"^--image: container.image 'docker://a/b:1'"):
        switched(slurm, None, "docker://a/b:1", lambda p: p)
    # a detected node is checked too: here SMT the detected node (1 thread) cannot give
    smt = _site(scheduler={"kind": "slurm", "partition": "debug", "threads_per_core": 2})
    with pytest.raises(UserError, match=r"node detected on this machine.*threads_per_core 2"):
        resolve(smt)


def test_report_section_is_the_study_kinds(tmp_path):
    from hpcscale.analysis.kinds import sections

    jobs = [
        {"label": f"n2-fold{i}", "fold": i, "status": "completed", "val_accuracy": acc}
        for i, acc in enumerate([0.5, 0.7])
    ]
    blocks = sections({"kind": "kfold", "study": "s1", "jobs": jobs}, tmp_path, "t")
    assert blocks[0] == ("h2", "K-fold cross-validation — study s1")
    (table,) = [body for kind, body in blocks if kind == "table"]
    assert table[1][-1][:4] == ["mean ± std", "2 of 2 folds", "", "60.0 ± 14.1 %"]
    assert sections({"study": "s1", "jobs": jobs}, tmp_path, "t") == []  # scaling: none
    with pytest.raises(UnknownNameError, match=r"kind 'sweeep'.*did you mean 'sweep'"):
        sections({"kind": "sweeep", "jobs": []}, tmp_path, "t")


def test_a_rank_tells_the_runtime_it_runs_inside_from_the_runtimes_own_variable():
    from hpcscale.containers.runtime import runtime_inside

    assert runtime_inside({"CH_RUNNING": "Yes"}) == "charliecloud"
    # Apptainer sets Singularity's variable too, for compatibility: it is still Apptainer
    assert runtime_inside({"APPTAINER_CONTAINER": "i", "SINGULARITY_CONTAINER": "i"}) == "apptainer"
    assert runtime_inside({"SINGULARITY_CONTAINER": "i"}) == "singularity"
    assert runtime_inside({"HOME": "/root"}) is None
