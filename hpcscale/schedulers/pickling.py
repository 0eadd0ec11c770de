"""Shared parts of the LSF and PBS backends, built on submitit's PicklingExecutor.

submitit loads plugins from its ``submitit`` entry-point group, which takes one ``executor`` and
one ``job_environment`` per entry; hpcscale registers ``SiteJobEnvironment``, which serves
LSF, PBS and Torque jobs (it is what ``python -m submitit.core._submit`` needs inside a job),
and the LSF, PBS and Torque executors. Each backend module keeps its own commands and parsing.
"""

from __future__ import annotations

import math
import os
import shlex
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from submitit.core import core, job_environment
from submitit.core.utils import JobPaths

from hpcscale.containers.runtime import rank_python
from hpcscale.plan import JobPlan
from hpcscale.render.script import JobSpec, render_script
from hpcscale.schedulers.base import Backend, submit_command
from hpcscale.schedulers.registry import get
from hpcscale.sites.models import Site
from hpcscale.train.jobenv import detect


def script(
    backend: Backend, site: Site, plan: JobPlan, job: JobSpec, folder: Path, job_id_pattern: str
) -> str:
    """The submitted script of a PicklingExecutor backend: submitit's command and log paths
    (``job_id_pattern``: how the scheduler writes the job id in -o/-e; "" for none)."""
    paths = JobPaths(folder=folder)

    def log(path: Path) -> str | None:
        if not job_id_pattern:
            return None
        return str(path).replace("%t", "0").replace("%j", job_id_pattern)

    spec = replace(
        job,
        command=shlex.split(submit_command(folder, rank_python(site))),
        output=log(paths.stdout),
        error=log(paths.stderr),
        env={**job.env, "SUBMITIT_EXECUTOR": backend.name},
    )
    return render_script(site, plan, spec, backend.context(site, plan))


class SiteExecutor(core.PicklingExecutor):
    """A submitit executor whose submission file is the site's rendered template."""

    executor_name: ClassVar[str] = ""

    def __init__(self, folder: Path, site: Site, plan: JobPlan, job: JobSpec) -> None:
        super().__init__(folder, max_num_timeout=site.limits.requeues)
        self.site, self.plan, self.job = site, plan, job
        self.parameters["timeout_min"] = math.ceil(plan.walltime_s / 60)

    @classmethod
    def _valid_parameters(cls) -> set[str]:
        return {"timeout_min"}

    def _num_tasks(self) -> int:
        return self.plan.ranks

    @property
    def _submitit_command_str(self) -> str:
        return submit_command(self.folder, rank_python(self.site))

    def _make_submission_file_text(self, command: str, uid: str) -> str:
        return get(self.executor_name).script(self.site, self.plan, self.job, self.folder)


class PicklingBackend(Backend):
    """A backend on a ``SiteExecutor`` subclass: its submitted script, executor and jobs follow
    from two class attributes."""

    executor_class: ClassVar[type[SiteExecutor]]
    job_id_pattern: ClassVar[str] = ""  # how the scheduler writes the job id in -o/-e ("": none)

    def script(self, site: Site, plan: JobPlan, job: JobSpec, folder: Path) -> str:
        return script(self, site, plan, job, folder, self.job_id_pattern)

    def executor(self, site: Site, plan: JobPlan, job: JobSpec, folder: Path) -> SiteExecutor:
        return self.executor_class(folder, site, plan, job)

    def job(self, folder: Path, job_id: str) -> core.Job:
        return self.executor_class.job_class(folder=folder, job_id=job_id)


class StateWatcher(core.InfoWatcher):
    """submitit's state poller for a scheduler whose command prints JSON: subclasses give the
    command (``_make_command``) and map its output to {job id: {"State": ...}} (``read_info``)."""

    def get_state(self, job_id: str, mode: str = "standard") -> str:
        return self.get_info(job_id, mode=mode).get("State") or "UNKNOWN"

    def pending_ids(self) -> list[str]:
        return sorted(self._registered - self._finished)


class SiteJobEnvironment(job_environment.JobEnvironment):
    """Rank, size and job id inside LSF and PBS jobs, and Slurm jobs whose ranks another
    launcher than srun starts (ibrun, mpirun), from hpcscale's JobEnvironment."""

    _env: ClassVar[dict[str, str]] = {}

    def activated(self) -> bool:
        return os.environ.get("SUBMITIT_EXECUTOR", "") in ("lsf", "pbs", "torque", "slurm-mpi")

    @property
    def _job(self) -> Any:
        return detect()

    @property
    def raw_job_id(self) -> str:
        return str(self._job.job_id)

    @property
    def num_tasks(self) -> int:
        return int(self._job.world_size)

    @property
    def num_nodes(self) -> int:
        return max(len(self._job.nodes), 1)

    @property
    def node(self) -> int:
        return 0

    @property
    def global_rank(self) -> int:
        return int(self._job.rank)

    @property
    def local_rank(self) -> int:
        return int(self._job.local_rank)

    def _requeue(self, countdown: int) -> None:
        name = os.environ["SUBMITIT_EXECUTOR"].removesuffix("-mpi")
        subprocess.check_call([*get(name).requeue_command, self.job_id])
