"""This machine: submitit's LocalExecutor starts one process per rank (no submission file);
the site template's module loads and exports run first, as its ``setup``."""

from __future__ import annotations

import contextlib
import math
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import submitit
from submitit.local.local import LocalJob

from hpcscale.containers.runtime import rank_python
from hpcscale.plan import JobPlan
from hpcscale.render.script import JobSpec, comment_text, render_environment
from hpcscale.schedulers.base import Backend, submit_command
from hpcscale.sites.models import Site


class Local(Backend):
    name = "local"
    label = "the local scheduler"
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
                f"# starts {plan.ranks} rank(s) of: {submit_command(folder, rank_python(site))}",
                *[
                    f"# Every rank runs {job.rank_what} with: {comment_text(shlex.join(args))}"
                    for args in [job.rank_args]
                    if args
                ],
                *render_environment(site, plan, job),
                "",
            ]
        )

    def executor(self, site: Site, plan: JobPlan, job: JobSpec, folder: Path) -> Any:
        executor = QuietLocalExecutor(
            folder=folder, max_num_timeout=site.limits.requeues, python=rank_python(site)
        )
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
        """SIGTERM to the job's session (its controller started one, and the job ID is its
        leader's PID): the controller and every rank get it, as ranks of a cancelled batch job
        do; they stop at once and write their statuses."""
        with contextlib.suppress(OSError):
            os.killpg(int(job_id), signal.SIGTERM)


class QuietLocalExecutor(submitit.LocalExecutor):
    """submitit's LocalExecutor whose job controller runs as a batch job does: in a session of
    its own (Ctrl-C at the terminal that submitted it does not reach it or its ranks; `hpcscale
    cancel` stops it), writing to ``controller.log`` in the job's submitit folder."""

    # Not through submitit's public surface, on purpose: its _submit_command hands everything to
    # submitit.local.local.start_controller, whose Popen takes neither a new session nor an
    # output file, and setpgid cannot be applied to the child after it has started; so this
    # repeats those two functions' body (environment included) with the two changes. Checked
    # against submitit 1.5.4; pyproject.toml pins submitit to that series (>=1.5.4,<1.6).
    def _submit_command(self, command: str) -> Any:
        p = self.parameters
        ntasks = p.get("tasks_per_node", 1)
        env = dict(os.environ)
        env.update(
            SUBMITIT_LOCAL_NTASKS=str(ntasks),
            SUBMITIT_LOCAL_COMMAND=command,
            SUBMITIT_LOCAL_TIMEOUT_S=str(int(60 * p.get("timeout_min", 2.0))),
            SUBMITIT_LOCAL_SIGNAL_DELAY_S=str(int(p.get("signal_delay_s", 30))),
            SUBMITIT_LOCAL_NODEID="0",
            SUBMITIT_LOCAL_JOB_NUM_NODES="1",
            SUBMITIT_STDERR_TO_STDOUT="",
            SUBMITIT_EXECUTOR="local",
            CUDA_VISIBLE_DEVICES=",".join(str(k) for k in range(p.get("gpus_per_node", 0))),
            SUBMITIT_LOCAL_WITH_SHELL="1" if p.get("setup") else "",
        )
        controller = [sys.executable, "-m", "submitit.local._local", str(self.folder)]
        setup = list(p.get("setup", ()))
        folder = Path(self.folder)
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "controller.log", "ab") as log:
            process = subprocess.Popen(
                " && ".join([*setup, shlex.join(controller)]) if setup else controller,
                shell=bool(setup),  # the site's module loads and exports, as submitit runs them
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return LocalJob(
            folder=self.folder, job_id=str(process.pid), process=process, tasks=list(range(ntasks))
        )


BACKEND = Local()
