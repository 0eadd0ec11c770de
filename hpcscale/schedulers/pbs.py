"""PBS Pro: ``qsub SCRIPT``, ``qstat -f -F json -x`` for states, ``qdel``, ``qrerun``."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from submitit.core import core, utils

from hpcscale.plan import JobPlan
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


# PBS Pro custom resources in a select chunk: name or name=value, all of them (&).
_RESOURCE = r"[A-Za-z][A-Za-z0-9_]*(?:=[A-Za-z0-9_.\-]+)?"
RESOURCES = rf"^{_RESOURCE}(?:&{_RESOURCE})*$"


def megabytes(gb: float) -> str:
    return f"{math.ceil(gb * 1024)}mb"


class PbsPro(pickling.PicklingBackend):
    """PBS Pro: one ``select`` chunk per node shape (a short last node gets its own chunk),
    ``place=scatter`` so every chunk is a node of its own, ``:excl`` on exclusive sites."""

    # PBS expands no pattern in -o/-e: it names the files itself (joined, -j oe).
    executor_class = PbsExecutor

    name = "pbs"
    label = "PBS Pro"
    submit_command = "qsub"
    requeue_command = ("qrerun",)
    walltime_step_s = 1
    cannot = {  # noqa: RUF012
        "qos": "PBS Pro has no QoS; use scheduler.partition (the queue)",
        "reservation": "PBS Pro runs a job in a reservation through the reservation's queue: "
        "set scheduler.partition to it (e.g. R1234)",
        "nodelist": "PBS Pro names hosts inside select chunks; use a queue or reservation",
        "exclude": "PBS Pro has no host exclusion; use a queue or reservation",
        "threads_per_core": "PBS Pro has no per-job SMT setting",
    }

    def refusals(self, site: Site) -> list[str]:
        c = site.scheduler.constraint
        if c is None or re.fullmatch(RESOURCES, c):  # custom resources, with values or not
            return super().refusals(site)
        if "|" in c:  # all of several resources (a&b), never any of them
            return [*super().refusals(site), *self.feature_refusal(site, or_allowed=False)]
        return [
            *super().refusals(site),
            f"scheduler.constraint {c!r}: PBS Pro takes host resources for the select chunk, "
            "each name or name=value, all of them joined by & (e.g. cpu_type=haswell&model=bro)",
        ]

    @staticmethod
    def resources(site: Site) -> list[str]:
        """The constraint as select-chunk resources: ``cpu_type=haswell&bigmem`` →
        ``cpu_type=haswell``, ``bigmem=True`` (PBS Pro's custom host resources; a bare name is
        a boolean one)."""
        c = site.scheduler.constraint or ""
        return [r if "=" in r else f"{r}=True" for r in c.split("&") if r]

    def chunk(self, site: Site, plan: JobPlan, count: int, ranks: int) -> str:
        s, node = site.scheduler, site.node
        cpus = node.cores if s.exclusive and node else ranks * plan.cpus_per_rank
        parts = [f"{count}:ncpus={cpus}:mpiprocs={ranks}"]
        if plan.gpus and s.request_gpus:
            parts.append(f"ngpus={plan.node_gpus(ranks)}")
        if s.memory_gb:
            parts.append(f"mem={megabytes(s.memory_gb)}")
        parts += self.resources(site)
        return ":".join(parts)

    def context(self, site: Site, plan: JobPlan) -> dict[str, Any]:
        chunks = [self.chunk(site, plan, n, r) for n, r in plan.node_groups()]
        place = "scatter:excl" if site.scheduler.exclusive else "scatter"
        return {
            "select": "+".join(chunks),
            "place": place if plan.nodes > 1 or site.scheduler.exclusive else None,
        }


BACKEND = PbsPro()
