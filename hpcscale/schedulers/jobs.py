"""What the rest of hpcscale asks of the site's scheduler backend (``registry.SCHEDULERS``).

``plan_job`` shapes a job and ``render_script`` renders its script for the site's scheduler (the
plan and render layers below take the backend's rules and values as arguments and look up none).
``job_script`` is the script a job submits (``hpcscale render``, ``submit --dry-run`` and
``submit`` all use it); ``make_executor`` the submitit executor that submits it; ``job_state`` and
``cancel`` ask the scheduler's own commands (``sacct``, ``bjobs``, ``qstat``; ``scancel``, ...).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hpcscale import plan as shapes
from hpcscale.plan import JobPlan, Request
from hpcscale.render import script as scripts
from hpcscale.render.script import JobSpec
from hpcscale.schedulers.base import submit_command
from hpcscale.schedulers.registry import for_site, get
from hpcscale.sites.models import Site

__all__ = [
    "cancel", "job_script", "job_state", "make_executor", "plan_job", "render_script",
    "submit_command",
]  # fmt: skip


def plan_job(site: Site, request: Request) -> JobPlan:
    """Shape one job on the site's scheduler (``plan.plan_job`` with the site's backend)."""
    return shapes.plan_job(site, request, for_site(site))


def render_script(site: Site, plan: JobPlan, job: JobSpec) -> str:
    """The job script from the site's templates with its scheduler's header values, the rank
    command as given (``hpcscale run``); ``job_script`` is what a submission sends."""
    return scripts.render_script(site, plan, job, for_site(site).context(site, plan))


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
