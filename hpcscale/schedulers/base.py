"""What every scheduler backend provides, and the parts they share.

A backend owns everything hpcscale does in one scheduler's words: which descriptor fields it
can honour (``refusals``), how it rounds a walltime, the values its header template
needs (``context``), the submitted script (``script``), submission (a submitit executor), state
polling, cancel and requeue, and the node list a per-node launcher (torchrun) starts from
(``templates/nodes/<name>.j2``). One module per backend, one line in ``registry.SCHEDULERS``.
"""

from __future__ import annotations

import math
import re
import shlex
import sys
from pathlib import Path
from typing import Any, ClassVar

from hpcscale.plan import JobPlan
from hpcscale.render.script import JobSpec
from hpcscale.sites.models import Site

# Request fields of ``scheduler``, by name, with how each is shown in refusals.
REQUEST_FIELDS = (
    "partition",
    "account",
    "constraint",
    "qos",
    "reservation",
    "nodelist",
    "exclude",
    "cpus_per_task",
    "threads_per_core",
    "memory_gb",
)
# A feature expression the non-Slurm schedulers can translate: names joined by & (all) or | (any).
FEATURES = r"^[A-Za-z0-9_.\-]+(?:[&|][A-Za-z0-9_.\-]+)*$"


class Backend:
    """One scheduler. Subclasses set the class attributes and override what differs."""

    name: ClassVar[str]  # registry key: slurm, lsf, pbs, torque, local
    label: ClassVar[str]  # how messages name the scheduler: Slurm, LSF, PBS Pro, ...
    submit_command: ClassVar[str | None] = None  # must be on PATH to submit
    requeue_command: ClassVar[tuple[str, ...]] = ()
    walltime_step_s: ClassVar[int] = 60  # the scheduler's walltime resolution
    # Request fields this scheduler cannot express at all: field -> what to do instead.
    cannot: ClassVar[dict[str, str]] = {}

    # --- validation ---------------------------------------------------------------------------

    def refusals(self, site: Site) -> list[str]:
        """One message per descriptor field this scheduler cannot honour (which launchers
        start ranks under it is the launchers' to say: ``hpcscale.launchers``)."""
        s = site.scheduler
        out = []
        for field, instead in self.cannot.items():
            if getattr(s, field) not in (None, []):
                out.append(
                    f"scheduler.{field} {_shown(getattr(s, field))}: {self.label} cannot express "
                    f"it{'; ' + instead if instead else ''}"
                )
        if s.gpu_request != "gres" and self.name != "slurm":
            out.append(
                f"scheduler.gpu_request {s.gpu_request!r} is Slurm's; {self.label} has one way "
                "to ask for GPUs, leave it unset"
            )
        node = site.node
        if node is not None and s.threads_per_core and s.threads_per_core > node.threads_per_core:
            out.append(
                f"scheduler.threads_per_core {s.threads_per_core} is over the node's "
                f"node.threads_per_core {node.threads_per_core}"
            )
        return out

    @staticmethod
    def features(site: Site) -> tuple[list[str], str]:
        """The constraint's feature names and how they combine ("&": all, "|": any);
        ``feature_refusal`` has checked the form."""
        c = site.scheduler.constraint or ""
        return [f for f in re.split(r"[&|]", c) if f], "|" if "|" in c else "&"

    def feature_refusal(self, site: Site, *, or_allowed: bool) -> list[str]:
        c = site.scheduler.constraint
        if c is None:
            return []
        if not re.fullmatch(FEATURES, c):
            return [
                f"scheduler.constraint {c!r}: {self.label} takes feature names joined by & (all "
                "of)" + (" or | (any of)" if or_allowed else "")
            ]
        if "|" in c and not or_allowed:
            return [
                f"scheduler.constraint {c!r}: {self.label} can ask for all of several features "
                "(a&b), not for any of them (a|b)"
            ]
        if "&" in c and "|" in c:
            return [f"scheduler.constraint {c!r}: use either & or |, not both"]
        return []

    # --- planning and rendering ---------------------------------------------------------------

    def round_walltime(self, seconds: int) -> int:
        """The walltime the scheduler enforces for a request of ``seconds``: rounded up to its
        resolution, never down (the training core is told this value as --time-limit)."""
        step = self.walltime_step_s
        return max(math.ceil(seconds / step) * step, step)

    def plan_refusal(self, site: Site, plan: JobPlan) -> str | None:
        """A job shape this scheduler cannot ask for (one line), or None."""
        return None

    def context(self, site: Site, plan: JobPlan) -> dict[str, Any]:
        """Values the header template needs beyond site, plan and job."""
        return {}

    def script(self, site: Site, plan: JobPlan, job: JobSpec, folder: Path) -> str:
        """The script submitted for ``job``: every rank runs submitit's ``_submit FOLDER``."""
        raise NotImplementedError

    # --- submission and jobs ------------------------------------------------------------------

    def executor(self, site: Site, plan: JobPlan, job: JobSpec, folder: Path) -> Any:
        raise NotImplementedError

    def job(self, folder: Path, job_id: str) -> Any | None:
        """A submitit Job for a submitted job (state, cancel); None where there is none."""
        return None

    def state(self, folder: Path, job_id: str) -> str:
        """The job's state, lower case, as the scheduler's own command reports it."""
        job = self.job(folder, job_id)
        return job.state.lower() if job is not None else "unknown"

    def cancel(self, folder: Path, job_id: str) -> None:
        job = self.job(folder, job_id)
        if job is not None:
            job.cancel(check=False)


def _shown(value: object) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else repr(value)


def submit_command(folder: Path, python: str | None = None) -> str:
    """submitit's rank command: load the pickled function from ``folder`` and call it."""
    py = python or shlex.quote(sys.executable)
    return f"{py} -u -m submitit.core._submit {shlex.quote(str(folder))}"
