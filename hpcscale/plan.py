"""From a site and a request to one job's shape: nodes, ranks, GPUs and threads per rank.

Pure arithmetic, no I/O: ``plan_job`` either returns a ``JobPlan`` or raises ``PlanError`` saying
which limit the request breaks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hpcscale.errors import PlanError
from hpcscale.sites.models import Site, format_walltime, walltime_seconds

DEFAULT_WALLTIME = "01:00:00"


@dataclass(frozen=True)
class Request:
    """What the user asked for: exactly one of gpus, nodes or ranks, and a walltime."""

    gpus: int | None = None
    nodes: int | None = None
    ranks: int | None = None
    walltime: str | None = None

    def __post_init__(self) -> None:
        given = [k for k in ("gpus", "nodes", "ranks") if getattr(self, k) is not None]
        if len(given) != 1:
            raise PlanError("give exactly one of --gpus, --nodes or --ranks")
        for key in given:
            if getattr(self, key) < 1:
                raise PlanError(f"--{key} must be a positive integer (got {getattr(self, key)})")


@dataclass(frozen=True)
class JobPlan:
    site: str
    nodes: int
    ranks: int
    ranks_per_node: int
    gpus_per_rank: int
    cpus_per_rank: int
    walltime_s: int

    @property
    def gpus(self) -> int:
        return self.ranks * self.gpus_per_rank

    @property
    def gpus_per_node(self) -> int:
        return self.ranks_per_node * self.gpus_per_rank

    @property
    def walltime(self) -> str:
        return format_walltime(self.walltime_s)

    @property
    def label(self) -> str:
        """Short name for the job: ``8g`` on GPU sites, ``8r`` on CPU sites."""
        return f"{self.gpus}g" if self.gpus else f"{self.ranks}r"


def plan_job(site: Site, request: Request) -> JobPlan:
    """Shape one job; ``site`` must be resolved (``detect.resolve``) first."""
    if site.node is None:
        raise PlanError(f"site {site.name} has no node description; resolve it first")
    node = site.node
    gpus_per_node = node.gpus.count if node.gpus else 0
    # Ranks per node: the site's choice, else one per GPU; CPU sites asked for ranks fill
    # their cores, asked for nodes run one rank per node.
    cpu_default = node.cores if request.ranks is not None else 1
    per_node = site.workers_per_node or gpus_per_node or cpu_default
    gpus_per_rank = gpus_per_node // per_node if gpus_per_node else 0

    if request.gpus is not None:
        if not gpus_per_node:
            raise PlanError(
                f"site {site.name} has no GPUs; ask for --nodes or --ranks instead of --gpus"
            )
        if request.gpus % gpus_per_rank:
            raise PlanError(
                f"site {site.name} gives each rank {gpus_per_rank} GPUs; --gpus must be a "
                f"multiple of {gpus_per_rank} (got {request.gpus})"
            )
        ranks = request.gpus // gpus_per_rank
    elif request.nodes is not None:
        ranks = request.nodes * per_node
    else:
        ranks = request.ranks  # type: ignore[assignment]

    if site.scheduler.kind == "local" and request.ranks is not None:
        per_node = ranks  # one machine: every rank on it, GPUs shared round-robin if any
    nodes = math.ceil(ranks / per_node)
    ranks_per_node = min(ranks, per_node)
    if nodes > 1 and ranks % per_node and site.scheduler.exclusive:
        unit = f"{per_node} GPUs" if request.gpus is not None else f"{per_node} ranks"
        asked = request.gpus if request.gpus is not None else ranks
        multiples = ", ".join(str(per_node * k * max(gpus_per_rank, 1)) for k in (1, 2, 4))
        raise PlanError(
            f"site {site.name} allocates whole nodes of {unit}: {asked} would leave part of "
            f"node {nodes} idle; use fewer than one node or a multiple ({multiples}, ...)"
        )
    if nodes > site.limits.max_nodes:
        raise PlanError(
            f"site {site.name} has at most {site.limits.max_nodes} nodes; this request needs "
            f"{nodes} ({ranks} ranks, {per_node} per node)"
        )

    wall = request.walltime or site.limits.default_walltime or DEFAULT_WALLTIME
    try:
        wall_s = walltime_seconds(wall)
    except ValueError as exc:
        raise PlanError(f"--walltime: {exc}") from None
    limit_s = walltime_seconds(site.limits.max_walltime)
    if request.walltime is None:
        wall_s = min(wall_s, limit_s)
    if wall_s > limit_s:
        raise PlanError(
            f"--walltime {wall} is over site {site.name}'s limit of {format_walltime(limit_s)}"
        )
    if wall_s <= 0:
        raise PlanError("--walltime must be longer than zero")
    cpus = max(node.cores // ranks_per_node, 1)
    return JobPlan(
        site=site.name,
        nodes=nodes,
        ranks=ranks,
        ranks_per_node=ranks_per_node,
        gpus_per_rank=gpus_per_rank,
        cpus_per_rank=cpus,
        walltime_s=wall_s,
    )
