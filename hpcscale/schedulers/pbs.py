"""PBS (Torque and PBS Pro): ``qsub SCRIPT``, ``qstat -f -F json -x`` for states, ``qdel``."""

from __future__ import annotations

from pathlib import Path

from submitit.core import core, utils

from hpcscale.plan import JobPlan
from hpcscale.render.script import JobSpec
from hpcscale.schedulers import pickling
from hpcscale.sites.models import Site

STATES = {
    "Q": "PENDING",
    "H": "PENDING",
    "W": "PENDING",
    "T": "PENDING",
    "R": "RUNNING",
    "E": "COMPLETING",
    "S": "SUSPENDED",
    "U": "SUSPENDED",
}


class PbsInfoWatcher(pickling.StateWatcher):
    def _make_command(self) -> list[str] | None:
        to_check = self.pending_ids()
        return ["qstat", "-f", "-F", "json", "-x", *to_check] if to_check else None

    def read_info(self, string: bytes | str) -> dict[str, dict[str, str]]:
        import json

        text = string.decode() if isinstance(string, bytes) else string
        jobs = json.loads(text or "{}").get("Jobs", {})
        info = {}
        for job_id, job in jobs.items():
            state = job.get("job_state", "")
            if state in ("F", "C"):  # finished (PBS Pro), completed (Torque)
                state_name = "COMPLETED" if int(job.get("Exit_status", 0)) == 0 else "FAILED"
            else:
                state_name = STATES.get(state, "UNKNOWN")
            info[job_id] = {"State": state_name}
            info[job_id.split(".")[0]] = info[job_id]
        return info


class PbsJob(core.Job[core.R]):
    _cancel_command = "qdel"
    watcher = PbsInfoWatcher(delay_s=60)


class PbsExecutor(pickling.SiteExecutor):
    job_class = PbsJob
    executor_name = "pbs"

    def _make_submission_command(self, submission_file_path: Path) -> list[str]:
        return ["qsub", str(submission_file_path)]

    @staticmethod
    def _get_job_id_from_submission_command(string: bytes | str) -> str:
        text = (string.decode() if isinstance(string, bytes) else string).strip()
        if not text:
            raise utils.FailedSubmissionError("qsub printed no job id")
        return text.splitlines()[-1].split()[0]


def script_for(site: Site, plan: JobPlan, job: JobSpec, folder: Path, command: str) -> str:
    return pickling.script_for(site, plan, job, folder, command, "pbs")


def make_executor(site: Site, plan: JobPlan, job: JobSpec, folder: Path) -> PbsExecutor:
    return PbsExecutor(folder, site, plan, job)
