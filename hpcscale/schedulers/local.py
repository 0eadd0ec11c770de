"""This machine: submitit's LocalExecutor starts one process per rank (no submission file);
the site template's module loads and exports run first, as its ``setup``."""

from __future__ import annotations

import math
from pathlib import Path

import submitit

from hpcscale.plan import JobPlan
from hpcscale.render.script import JobSpec, render_environment
from hpcscale.sites.models import Site


def script_for(site: Site, plan: JobPlan, job: JobSpec, folder: Path, command: str) -> str:
    """What the job amounts to, as a script (for the record; submitit runs the ranks itself)."""
    return "\n".join(
        [
            "#!/bin/bash",
            f"# hpcscale local job {job.name}: submitit's LocalExecutor runs these lines, then",
            f"# starts {plan.ranks} rank(s) of: {command}",
            *render_environment(site, plan, job),
            "",
        ]
    )


def make_executor(site: Site, plan: JobPlan, job: JobSpec, folder: Path) -> submitit.LocalExecutor:
    executor = submitit.LocalExecutor(folder=folder)
    executor.update_parameters(
        tasks_per_node=plan.ranks,
        gpus_per_node=plan.gpus,
        timeout_min=math.ceil(plan.walltime_s / 60),
        setup=render_environment(site, plan, job),
        name=job.name,
    )
    return executor
