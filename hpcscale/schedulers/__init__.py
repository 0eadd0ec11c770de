"""One submitit executor per scheduler, each rendering the site's own job-script template.

``make_executor(site, plan, job, folder)`` returns a submitit executor whose submissions are the
scripts ``hpcscale render`` shows; ``submit_command`` is the rank command every task runs.
"""

from __future__ import annotations

import shlex
import sys
from importlib import import_module
from pathlib import Path
from typing import Any

from hpcscale.plan import JobPlan
from hpcscale.render.script import JobSpec
from hpcscale.sites.models import Site


def make_executor(site: Site, plan: JobPlan, job: JobSpec, folder: Path) -> Any:
    module = import_module(f"hpcscale.schedulers.{site.scheduler.kind}")
    return module.make_executor(site, plan, job, folder)


def script_for(site: Site, plan: JobPlan, job: JobSpec, folder: Path) -> str:
    """The script that would be submitted for ``job`` (for dry runs and the study record)."""
    module = import_module(f"hpcscale.schedulers.{site.scheduler.kind}")
    return module.script_for(site, plan, job, folder, submit_command(folder))


def job_handle(scheduler: str, folder: Path, job_id: str) -> Any | None:
    """A submitit Job for a submitted job (state, cancel); None for local jobs."""
    if scheduler == "slurm":
        import submitit

        return submitit.SlurmJob(folder=folder, job_id=job_id)
    if scheduler in ("lsf", "pbs"):
        module = import_module(f"hpcscale.schedulers.{scheduler}")
        job_class = module.LsfJob if scheduler == "lsf" else module.PbsJob
        return job_class(folder=folder, job_id=job_id)
    return None


def submit_command(folder: Path, python: str | None = None) -> str:
    """submitit's rank command: load the pickled function from ``folder`` and call it."""
    py = python or shlex.quote(sys.executable)
    return f"{py} -u -m submitit.core._submit {shlex.quote(str(folder))}"
