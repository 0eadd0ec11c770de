"""This machine: submitit's LocalExecutor starts one process per rank (no submission file);
the site template's module loads and exports run first, as its ``setup``."""

from __future__ import annotations

import contextlib
import math
import os
import shlex
import signal
from pathlib import Path
from typing import Any

from hpcscale.plan import JobPlan
from hpcscale.render.script import JobSpec, comment_text, render_environment
from hpcscale.schedulers.base import Backend, submit_command
from hpcscale.sites.models import Site


class Local(Backend):
    name = "local"
    label = "the local scheduler"
    launchers = frozenset({"local", "torchrun"})
    walltime_step_s = 1
    cannot = {  # noqa: RUF012
        field: "it runs on this machine only"
        for field in (
            "partition", "account", "constraint", "qos", "reservation", "nodelist", "exclude",
            "threads_per_core", "memory_gb",
        )
    }  # fmt: skip

    def script(self, site: Site, plan: JobPlan, job: JobSpec, folder: Path) -> str:
        """What the job amounts to, as a script (for the record; submitit runs the ranks)."""
        return "\n".join(
            [
                "#!/bin/bash",
                f"# hpcscale local job {job.name}: submitit's LocalExecutor runs these lines, then",
                f"# starts {plan.ranks} rank(s) of: {submit_command(folder)}",
                *[
                    f"# Every rank runs the training core with: {comment_text(shlex.join(args))}"
                    for args in [job.rank_args]
                    if args
                ],
                *render_environment(site, plan, job),
                "",
            ]
        )

    def executor(self, site: Site, plan: JobPlan, job: JobSpec, folder: Path) -> Any:
        import submitit

        executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(
            tasks_per_node=plan.ranks,
            gpus_per_node=plan.gpus,
            timeout_min=math.ceil(plan.walltime_s / 60),
            setup=render_environment(site, plan, job),
            name=job.name,
        )
        return executor

    def state(self, folder: Path, job_id: str) -> str:
        try:
            os.kill(int(job_id), 0)
        except OSError:
            return "ended without a summary"
        return "running"

    def cancel(self, folder: Path, job_id: str) -> None:
        with contextlib.suppress(OSError):
            os.kill(int(job_id), signal.SIGTERM)


BACKEND = Local()
