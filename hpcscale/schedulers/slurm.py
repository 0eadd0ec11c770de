"""Slurm: submitit's SlurmExecutor, with the submission file rendered from the site template;
``sacct`` (through submitit's SlurmJob) for states, ``scancel``, ``scontrol requeue``."""

from __future__ import annotations

import math
import shlex
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import submitit
from submitit.core.utils import JobPaths

from hpcscale.containers.runtime import rank_python
from hpcscale.launchers.registry import for_site
from hpcscale.plan import JobPlan
from hpcscale.render.script import JobSpec, render_script
from hpcscale.schedulers.base import Backend, submit_command
from hpcscale.sites.models import Site


def memory(gb: float) -> str:
    """Slurm's --mem value: whole GiB as ``64G``, else MiB (rounded up)."""
    return f"{int(gb)}G" if float(gb).is_integer() else f"{math.ceil(gb * 1024)}M"


class Slurm(Backend):
    name = "slurm"
    label = "Slurm"
    submit_command = "sbatch"
    requeue_command = ("scontrol", "requeue")

    def plan_refusal(self, site: Site, plan: JobPlan) -> str | None:
        if plan.uneven and plan.ranks_per_gpu > 1 and site.scheduler.request_gpus:
            return (
                f"{plan.ranks} ranks sharing GPUs {plan.ranks_per_gpu} per GPU leave the last "
                "node short, and Slurm asks for GPUs per node or per task, not per shared "
                f"group; ask for a multiple of {plan.gpus_per_node} GPUs"
            )
        return None

    def context(self, site: Site, plan: JobPlan) -> dict[str, Any]:
        s = site.scheduler
        gpu = None
        if plan.gpus and s.request_gpus:
            if plan.uneven:  # per node would ask for the full count on the short node too
                gpu = f"--gpus-per-task={plan.gpus_per_rank}"
            elif s.gpu_request == "gpus-per-node":
                gpu = f"--gpus-per-node={plan.gpus_per_node}"
            else:
                gpu = f"--gres=gpu:{plan.gpus_per_node}"
        return {
            "gpu": gpu,
            "memory": memory(s.memory_gb) if s.memory_gb else None,
        }

    def script(self, site: Site, plan: JobPlan, job: JobSpec, folder: Path) -> str:
        """Keeps submitit's contract: its log paths, USR2 before the limit, SUBMITIT_EXECUTOR."""
        paths = JobPaths(folder=folder)
        stdout, stderr = str(paths.stdout), str(paths.stderr)
        spec = replace(
            job,
            command=shlex.split(submit_command(folder, rank_python(site))),
            output=stdout.replace("%t", "0"),
            error=stderr.replace("%t", "0"),
            launcher_args=["--unbuffered", "--output", stdout, "--error", stderr],
            # submitit's Slurm job environment reads SLURM_PROCID, which only srun sets per task;
            # under mpirun or ibrun every rank would be 0, so hpcscale's environment takes over.
            env={
                **job.env,
                "SUBMITIT_EXECUTOR": "slurm" if for_site(site).slurm_tasks else "slurm-mpi",
            },
        )
        return render_script(site, plan, spec, self.context(site, plan))

    def executor(self, site: Site, plan: JobPlan, job: JobSpec, folder: Path) -> Any:
        return SiteSlurmExecutor(folder, site, plan, job)

    def job(self, folder: Path, job_id: str) -> Any:
        return submitit.SlurmJob(folder=folder, job_id=job_id)

    def state(self, folder: Path, job_id: str) -> str:
        """submitit asks ``sacct``, which knows no job that has not started where accounting
        lags or is off; ``squeue`` knows a pending one (``pending``, not ``unknown``)."""
        state = super().state(folder, job_id)
        if state not in ("unknown", "") or not shutil.which("squeue"):
            return state
        try:
            out = subprocess.run(
                ["squeue", "-h", "-j", str(job_id), "-o", "%T"],
                capture_output=True, text=True, timeout=30, check=False,
            ).stdout.split()  # fmt: skip
        except (OSError, subprocess.SubprocessError):
            return state
        return out[0].lower() if out else state


class SiteSlurmExecutor(submitit.SlurmExecutor):
    def __init__(self, folder: Path, site: Site, plan: JobPlan, job: JobSpec) -> None:
        super().__init__(folder, max_num_timeout=site.limits.requeues)
        self.site, self.plan, self.job = site, plan, job
        # submitit uses these for its own bookkeeping (task count, requeue timeout).
        self.update_parameters(
            nodes=plan.nodes,
            ntasks_per_node=plan.ranks_per_node,
            time=math.ceil(plan.walltime_s / 60),
            job_name=job.name,
        )

    def _make_submission_file_text(self, command: str, uid: str) -> str:
        return BACKEND.script(self.site, self.plan, self.job, self.folder)


BACKEND = Slurm()
