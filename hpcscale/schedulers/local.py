"""This machine: submitit's LocalExecutor starts one process per rank (no submission file);
the site template's module loads and exports run first, as its ``setup``."""

from __future__ import annotations

import contextlib
import math
import os
import shlex
import signal
import sys
from pathlib import Path
from typing import Any

import submitit

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
        executor = QuietLocalExecutor(folder=folder, max_num_timeout=site.limits.requeues)
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


class QuietLocalExecutor(submitit.LocalExecutor):
    """submitit's LocalExecutor whose job controller (a process that outlives ``submit``) writes
    to ``controller.log`` in the job's submitit folder instead of the terminal: Ctrl-C at the
    terminal stops the controller and its ranks, as one expects on this machine, without the
    controller's KeyboardInterrupt traceback landing under hpcscale's one-line message."""

    def _submit_command(self, command: str) -> Any:
        folder = Path(self.folder)
        folder.mkdir(parents=True, exist_ok=True)
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        log = os.open(folder / "controller.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.dup2(log, 1)
            os.dup2(log, 2)  # the controller inherits these
            return super()._submit_command(command)
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in (*saved, log):
                os.close(fd)


BACKEND = Local()
