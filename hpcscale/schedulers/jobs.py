"""What the rest of hpcscale asks of the site's scheduler backend (``registry.SCHEDULERS``).

``job_script`` is the script a job submits (``hpcscale render``, ``submit --dry-run`` and
``submit`` all use it); ``make_executor`` the submitit executor that submits it; ``job_state`` and
``cancel`` ask the scheduler's own commands (``sacct``, ``bjobs``, ``qstat``; ``scancel``, ...).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hpcscale.plan import JobPlan
from hpcscale.render.script import JobSpec
from hpcscale.schedulers.base import submit_command
from hpcscale.schedulers.registry import for_site, get
from hpcscale.sites.models import Site

__all__ = ["cancel", "job_script", "job_state", "make_executor", "submit_command"]


def make_executor(site: Site, plan: JobPlan, job: JobSpec, folder: Path) -> Any:
    return for_site(site).executor(site, plan, job, folder)


def job_script(site: Site, plan: JobPlan, job: JobSpec, folder: Path) -> str:
    """The script submitted for ``job``, whose ranks run submitit's ``_submit folder``."""
    return for_site(site).script(site, plan, job, folder)


def job_state(scheduler: str, folder: Path, job_id: str) -> str:
    """A submitted job's state (lower case) from its scheduler; ``scheduler`` is a backend name
    (a study manifest's). Manifests written before Torque had its own backend say ``pbs``."""
    return get(scheduler).state(folder, job_id)


def cancel(scheduler: str, folder: Path, job_id: str) -> None:
    get(scheduler).cancel(folder, job_id)
