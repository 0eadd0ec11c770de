"""Slurm: submitit's SlurmExecutor, with the submission file rendered from the site template."""

from __future__ import annotations

import math
import shlex
from dataclasses import replace
from pathlib import Path

import submitit
from submitit.core.utils import JobPaths

from hpcscale.plan import JobPlan
from hpcscale.render.script import JobSpec, render_script
from hpcscale.sites.models import Site


def script_for(site: Site, plan: JobPlan, job: JobSpec, folder: Path, command: str) -> str:
    """Keeps submitit's contract: its log paths, USR2 before the limit, SUBMITIT_EXECUTOR."""
    paths = JobPaths(folder=folder)
    stdout, stderr = str(paths.stdout), str(paths.stderr)
    spec = replace(
        job,
        command=shlex.split(command),
        output=stdout.replace("%t", "0"),
        error=stderr.replace("%t", "0"),
        launcher_args=["--unbuffered", "--output", stdout, "--error", stderr],
        # submitit's Slurm job environment reads SLURM_PROCID, which only srun sets per task;
        # under mpirun or ibrun every rank would be 0, so hpcscale's environment takes over.
        env={
            **job.env,
            "SUBMITIT_EXECUTOR": "slurm" if site.launcher.kind == "srun" else "slurm-mpi",
        },
    )
    return render_script(site, plan, spec)


class SiteSlurmExecutor(submitit.SlurmExecutor):
    def __init__(self, folder: Path, site: Site, plan: JobPlan, job: JobSpec) -> None:
        super().__init__(folder, max_num_timeout=3)
        self.site, self.plan, self.job = site, plan, job
        # submitit uses these for its own bookkeeping (task count, requeue timeout).
        self.update_parameters(
            nodes=plan.nodes,
            ntasks_per_node=plan.ranks_per_node,
            time=math.ceil(plan.walltime_s / 60),
            job_name=job.name,
        )

    def _make_submission_file_text(self, command: str, uid: str) -> str:
        return script_for(self.site, self.plan, self.job, self.folder, command)


def make_executor(site: Site, plan: JobPlan, job: JobSpec, folder: Path) -> SiteSlurmExecutor:
    return SiteSlurmExecutor(folder, site, plan, job)
