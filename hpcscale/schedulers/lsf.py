"""LSF: ``bsub`` reads the script on stdin (so #BSUB lines count), ``bjobs -json`` for states,
``bkill`` to cancel."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from submitit.core import core, utils

from hpcscale.plan import JobPlan
from hpcscale.render.script import JobSpec
from hpcscale.schedulers import pickling
from hpcscale.sites.models import Site

STATES = {
    "PEND": "PENDING",
    "PROV": "PENDING",
    "WAIT": "PENDING",
    "RUN": "RUNNING",
    "DONE": "COMPLETED",
    "EXIT": "FAILED",
    "PSUSP": "SUSPENDED",
    "USUSP": "SUSPENDED",
    "SSUSP": "SUSPENDED",
    "ZOMBI": "FAILED",
    "UNKWN": "UNKNOWN",
}


class LsfInfoWatcher(pickling.StateWatcher):
    def _make_command(self) -> list[str] | None:
        to_check = self.pending_ids()
        return ["bjobs", "-o", "jobid stat", "-json", *to_check] if to_check else None

    def read_info(self, string: bytes | str) -> dict[str, dict[str, str]]:
        import json

        text = string.decode() if isinstance(string, bytes) else string
        records = json.loads(text or "{}").get("RECORDS", [])
        return {
            str(r["JOBID"]): {"State": STATES.get(r.get("STAT", ""), "UNKNOWN")}
            for r in records
            if "JOBID" in r
        }


class LsfJob(core.Job[core.R]):
    _cancel_command = "bkill"
    watcher = LsfInfoWatcher(delay_s=60)


class LsfExecutor(pickling.SiteExecutor):
    job_class = LsfJob
    executor_name = "lsf"

    def _make_submission_command(self, submission_file_path: Path) -> list[str]:
        return ["/bin/sh", "-c", f"exec bsub < {shlex.quote(str(submission_file_path))}"]

    @staticmethod
    def _get_job_id_from_submission_command(string: bytes | str) -> str:
        text = string.decode() if isinstance(string, bytes) else string
        match = re.search(r"Job <(\d+)>", text)
        if match is None:
            raise utils.FailedSubmissionError(f"could not read a job id from bsub: {text!r}")
        return match.group(1)


def script_for(site: Site, plan: JobPlan, job: JobSpec, folder: Path, command: str) -> str:
    return pickling.script_for(site, plan, job, folder, command, "lsf")


def make_executor(site: Site, plan: JobPlan, job: JobSpec, folder: Path) -> LsfExecutor:
    return LsfExecutor(folder, site, plan, job)
