"""LSF: ``bsub`` reads the script on stdin (so #BSUB lines count), ``bjobs -json`` for states,
``bkill`` to cancel."""

from __future__ import annotations

import json
import math
import re
import shlex
from pathlib import Path
from typing import Any

from submitit.core import core, utils

from hpcscale.launchers.registry import for_site
from hpcscale.plan import JobPlan
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


def memory(gb: float) -> str:
    return f"{int(gb)}GB" if float(gb).is_integer() else f"{math.ceil(gb * 1024)}MB"


class Lsf(pickling.PicklingBackend):
    """LSF. With jsrun (LSF-CSM, e.g. Summit) a job asks for whole nodes (``-nnodes``) and jsrun
    places ranks, GPUs and cores; otherwise it asks for one slot per core its ranks use
    (``-n``, ``span[ptile]``), so mpirun's ``PE=`` binding finds every core it binds reserved."""

    executor_class = LsfExecutor
    job_id_pattern = "%J"

    name = "lsf"
    label = "LSF"
    submit_command = "bsub"
    requeue_command = ("brequeue",)
    cannot = {  # noqa: RUF012
        "qos": "LSF has no QoS; use scheduler.partition (the queue), or an -sla line in "
        "scheduler.directives",
    }

    def refusals(self, site: Site) -> list[str]:
        s = site.scheduler
        out = [*super().refusals(site), *self.feature_refusal(site, or_allowed=True)]
        jsrun = for_site(site).resource_sets
        if jsrun and s.memory_gb:
            out.append(
                f"scheduler.memory_gb {s.memory_gb:g}: LSF with jsrun allocates whole nodes "
                "(-nnodes); their memory cannot be asked for"
            )
        if s.threads_per_core and not jsrun:
            out.append(
                f"scheduler.threads_per_core {s.threads_per_core}: LSF sets SMT only through "
                "jsrun's -alloc_flags smtN; use launcher jsrun or leave it unset"
            )
        return out

    def plan_refusal(self, site: Site, plan: JobPlan) -> str | None:
        jsrun = for_site(site).resource_sets
        if not jsrun and plan.uneven and plan.ranks_per_gpu > 1 and site.scheduler.request_gpus:
            return (
                f"{plan.ranks} ranks sharing GPUs leave the last node short, and LSF asks for "
                f"GPUs per host or per task; ask for a multiple of {plan.gpus_per_node} GPUs"
            )
        return None

    def context(self, site: Site, plan: JobPlan) -> dict[str, Any]:
        s = site.scheduler
        jsrun = for_site(site).resource_sets
        select = []
        features, how = self.features(site)
        if features:
            expr = (" || " if how == "|" else " && ").join(features)
            select.append(f"({expr})" if len(features) > 1 and s.exclude else expr)
        select += [f"hname!={host}" for host in s.exclude]
        resources = []
        if not jsrun:
            resources.append(f"span[ptile={plan.ranks_per_node * plan.cpus_per_rank}]")
        if select:
            resources.append(f"select[{' && '.join(select)}]")
        if s.memory_gb:
            resources.append(f"rusage[mem={memory(s.memory_gb)}]")
        gpu = None
        if plan.gpus and s.request_gpus and not jsrun:  # jsrun asks per resource set
            gpu = f"num={plan.gpus_per_rank}/task" if plan.uneven else f"num={plan.gpus_per_node}"
        minutes = plan.walltime_s // 60
        return {
            "jsrun": jsrun,
            "slots": plan.ranks * plan.cpus_per_rank,
            "resources": " ".join(resources) or None,
            "gpu": gpu,
            "walltime": f"{minutes // 60:02d}:{minutes % 60:02d}",
        }


BACKEND = Lsf()
