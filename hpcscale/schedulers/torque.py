"""Torque (with Moab): ``qsub SCRIPT``, ``qstat -f`` (text: Torque has no JSON) for states,
``qdel``, ``qrerun``. A job asks for ``nodes=N:ppn=P[:gpus=G][:feature]`` (a short last node is
a ``+`` part of its own), QoS and reservations through Moab's ``-l qos`` / ``-l advres``."""

from __future__ import annotations

import re
from typing import Any

from submitit.core import core

from hpcscale.plan import JobPlan
from hpcscale.schedulers import pickling
from hpcscale.schedulers.pbs import STATES, PbsExecutor, megabytes
from hpcscale.sites.models import Site


class TorqueInfoWatcher(pickling.StateWatcher):
    def _make_command(self) -> list[str] | None:
        to_check = self.pending_ids()
        return ["qstat", "-f", *to_check] if to_check else None

    def read_info(self, string: bytes | str) -> dict[str, dict[str, str]]:
        text = string.decode() if isinstance(string, bytes) else string
        info: dict[str, dict[str, str]] = {}
        for block in re.split(r"\n(?=Job Id:)", text.strip()):
            head = re.match(r"Job Id:\s*(\S+)", block)
            state = re.search(r"^\s*job_state = (\w)", block, re.MULTILINE)
            if not head or not state:
                continue
            code = re.search(r"^\s*exit_status = (-?\d+)", block, re.MULTILINE)
            if state.group(1) == "C":  # completed; exit_status says how
                name = "COMPLETED" if code is None or int(code.group(1)) == 0 else "FAILED"
            else:
                name = STATES.get(state.group(1), "UNKNOWN")
            job_id = head.group(1)
            info[job_id] = info[job_id.split(".")[0]] = {"State": name}
        return info


class TorqueJob(core.Job[core.R]):
    _cancel_command = "qdel"
    watcher = TorqueInfoWatcher(delay_s=60)


class TorqueExecutor(PbsExecutor):
    job_class = TorqueJob
    executor_name = "torque"


class Torque(pickling.PicklingBackend):
    executor_class = TorqueExecutor
    name = "torque"
    label = "Torque"
    submit_command = "qsub"
    requeue_command = ("qrerun",)
    walltime_step_s = 1
    cannot = {  # noqa: RUF012
        "nodelist": "Torque names hosts in place of node counts; use a queue or reservation",
        "exclude": "Torque has no host exclusion; use a queue or reservation",
        "threads_per_core": "Torque has no per-job SMT setting",
    }

    def refusals(self, site: Site) -> list[str]:
        return [*super().refusals(site), *self.feature_refusal(site, or_allowed=False)]

    def context(self, site: Site, plan: JobPlan) -> dict[str, Any]:
        s, node = site.scheduler, site.node
        parts = []
        for count, ranks in plan.node_groups():
            ppn = node.cores if s.exclusive and node else ranks * plan.cpus_per_rank
            part = [f"{count}:ppn={ppn}"]
            if plan.gpus and s.request_gpus:
                part.append(f"gpus={plan.node_gpus(ranks)}")
            parts.append(":".join(part + self.features(site)[0]))
        # Torque's mem is the job's total over all its nodes.
        memory = megabytes(s.memory_gb * plan.nodes) if s.memory_gb else None
        return {"nodes": "+".join(parts), "memory": memory}


BACKEND = Torque()
