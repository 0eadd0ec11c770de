"""From a site and a request to one job's shape: nodes, ranks, GPUs and threads per rank.

Pure arithmetic, no I/O: ``plan_job`` either returns a ``JobPlan`` or raises ``PlanError`` saying
which limit the request breaks. What it needs from the site's scheduler (walltime resolution,
refusals) comes in as ``SchedulerRules``: the plan sits below the schedulers, which use its types;
``hpcscale.schedulers.plan_job`` passes the site's backend.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from hpcscale.errors import PlanError
from hpcscale.sites.models import Site, format_walltime, walltime_seconds

DEFAULT_WALLTIME = "01:00:00"


# The scheduler's warning before the walltime (Slurm --signal=USR2@, LSF -wt): the job then
# checkpoints at a step boundary and is requeued. A job needs a minute of its own before it.
CHECKPOINT_LEAD_S = 120
MIN_WALLTIME_S = CHECKPOINT_LEAD_S + 60


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
    """One job's shape. ``ranks_per_node`` is the count on a full node; with ``uneven`` the last
    node runs ``last_node_ranks`` (fewer). GPUs: each rank has ``gpus_per_rank`` of its own, or,
    with ``ranks_per_gpu`` > 1, that many ranks share one GPU (``gpus_per_rank`` is then 0)."""

    site: str
    nodes: int
    ranks: int
    ranks_per_node: int
    gpus_per_rank: int
    cpus_per_rank: int
    walltime_s: int
    ranks_per_gpu: int = 1
    gpus: int = 0  # GPUs the job asks for, in all
    gpus_per_node: int = 0  # GPUs asked for on a full node

    @property
    def walltime(self) -> str:
        return format_walltime(self.walltime_s)

    @property
    def label(self) -> str:
        """Short name for the job: ``8g`` on GPU sites, ``8r`` on CPU sites."""
        return f"{self.gpus}g" if self.gpus else f"{self.ranks}r"

    @property
    def uneven(self) -> bool:
        return self.ranks != self.nodes * self.ranks_per_node

    @property
    def last_node_ranks(self) -> int:
        return self.ranks - (self.nodes - 1) * self.ranks_per_node

    def node_gpus(self, ranks_on_node: int) -> int:
        """GPUs a node running ``ranks_on_node`` ranks needs."""
        if not self.gpus:
            return 0
        if self.gpus_per_rank:
            return ranks_on_node * self.gpus_per_rank
        return math.ceil(ranks_on_node / self.ranks_per_gpu)

    def node_groups(self) -> list[tuple[int, int]]:
        """(nodes, ranks on each) for the full nodes, then the last one if it runs fewer."""
        if not self.uneven:
            return [(self.nodes, self.ranks_per_node)]
        groups = [(self.nodes - 1, self.ranks_per_node)] if self.nodes > 1 else []
        return [*groups, (1, self.last_node_ranks)]


def gpu_sharing(site: Site, workers: int, gpus_per_node: int) -> tuple[int, int]:
    """(GPUs per rank, ranks per GPU) for ``workers`` ranks on a node of ``gpus_per_node`` GPUs:
    each rank gets the same whole number of GPUs, or the same number of ranks share each GPU."""
    if workers <= gpus_per_node:
        if gpus_per_node % workers:
            raise PlanError(
                f"site {site.name} runs {workers} rank(s) per node on {gpus_per_node} GPUs: the "
                "GPUs cannot be shared out evenly; set workers_per_node to a divisor of "
                f"{gpus_per_node} or a multiple of it"
            )
        return gpus_per_node // workers, 1
    if workers % gpus_per_node:
        raise PlanError(
            f"site {site.name} runs {workers} ranks per node on {gpus_per_node} GPUs: ranks "
            "cannot share the GPUs evenly; set workers_per_node to a multiple of "
            f"{gpus_per_node} or a divisor of it"
        )
    return 0, workers // gpus_per_node


class SchedulerRules(Protocol):
    """What shaping a job needs from the site's scheduler (a ``schedulers.base.Backend``)."""

    @property
    def requeue_command(self) -> tuple[str, ...]:
        """Empty where the scheduler cannot requeue (then it does not warn before the limit)."""
        ...

    def round_walltime(self, seconds: int) -> int:
        """The walltime the scheduler enforces for a request of ``seconds``."""
        ...

    def plan_refusal(self, site: Site, plan: JobPlan) -> str | None:
        """A job shape the scheduler cannot ask for (one line), or None."""
        ...


def plan_job(site: Site, request: Request, scheduler: SchedulerRules) -> JobPlan:
    """Shape one job on ``scheduler`` (the site's backend: ``hpcscale.schedulers.plan_job``
    looks it up); ``site`` must be resolved (``detect.resolve``) first."""
    if site.node is None:
        raise PlanError(f"site {site.name} has no node description; resolve it first")
    node = site.node
    local = site.scheduler.kind == "local"
    node_gpus = node.gpus.count if node.gpus else 0
    # Ranks per node: the site's choice, else one per GPU; CPU sites asked for ranks fill
    # their cores, asked for nodes run one rank per node.
    cpu_default = node.cores if request.ranks is not None else 1
    per_node = site.workers_per_node or node_gpus or cpu_default
    if local and request.ranks is not None:
        per_node = request.ranks  # one machine: every rank on it, GPUs shared round-robin
    gpus_per_rank, ranks_per_gpu = (0, 1)
    if node_gpus and local:
        sharing = math.ceil(per_node / node_gpus)
        gpus_per_rank, ranks_per_gpu = (1, 1) if per_node <= node_gpus else (0, sharing)
    elif node_gpus:
        gpus_per_rank, ranks_per_gpu = gpu_sharing(site, per_node, node_gpus)

    ranks = _ranks(site, request, per_node, node_gpus, gpus_per_rank, ranks_per_gpu)
    nodes = math.ceil(ranks / per_node)
    _check_nodes(site, request, ranks, nodes, per_node, node_gpus)
    ranks_per_node = min(ranks, per_node)
    if not node_gpus:
        gpus = gpus_node = 0
    elif local:
        gpus = gpus_node = min(ranks, node_gpus)
    else:
        gpus = ranks * gpus_per_rank or ranks // ranks_per_gpu
        gpus_node = ranks_per_node * gpus_per_rank or ranks_per_node // ranks_per_gpu
    plan = JobPlan(
        site=site.name,
        nodes=nodes,
        ranks=ranks,
        ranks_per_node=ranks_per_node,
        gpus_per_rank=gpus_per_rank,
        cpus_per_rank=_cpus_per_rank(site, ranks_per_node, request),
        walltime_s=_walltime(
            site, request, scheduler.round_walltime, bool(scheduler.requeue_command)
        ),
        ranks_per_gpu=ranks_per_gpu,
        gpus=gpus,
        gpus_per_node=gpus_node,
    )
    refusal = scheduler.plan_refusal(site, plan)
    if refusal:
        raise PlanError(f"site {site.name}: {refusal}")
    return plan


def check_model_parallel(site: Site, plan: JobPlan, k: int) -> None:
    """Refuse a job whose ranks cannot form pipelines of ``k`` consecutive ranks on one node,
    one GPU each (``--model-parallel``)."""
    if k == 1:
        return
    if plan.ranks % k:
        raise PlanError(
            f"--model-parallel {k} needs a number of ranks that {k} divides (got {plan.ranks})"
        )
    if plan.ranks_per_node % k:
        raise PlanError(
            f"--model-parallel {k}: site {site.name} runs {plan.ranks_per_node} rank(s) per "
            f"node, and a pipeline's {k} stages must share a node; use a K that divides "
            f"{plan.ranks_per_node}"
        )
    if plan.gpus and plan.ranks_per_gpu > 1:
        raise PlanError(
            f"--model-parallel {k}: site {site.name} puts {plan.ranks_per_gpu} ranks on each "
            "GPU; a pipeline's stages need a GPU each"
        )


def _check_nodes(
    site: Site, request: Request, ranks: int, nodes: int, per_node: int, node_gpus: int
) -> None:
    if nodes > 1 and ranks % per_node and site.scheduler.exclusive:
        by_gpus = request.gpus is not None and node_gpus
        unit = f"{node_gpus} GPUs" if by_gpus else (
            f"{per_node} GPUs" if request.gpus is not None else f"{per_node} ranks"
        )  # fmt: skip
        asked = request.gpus if request.gpus is not None else ranks
        step = node_gpus if by_gpus else per_node
        multiples = ", ".join(str(step * k) for k in (1, 2, 4))
        raise PlanError(
            f"site {site.name} allocates whole nodes of {unit}: {asked} would leave part of "
            f"node {nodes} idle; use fewer than one node or a multiple ({multiples}, ...)"
        )
    if nodes > site.limits.max_nodes:
        raise PlanError(
            f"site {site.name} has at most {site.limits.max_nodes} nodes; this request needs "
            f"{nodes} ({ranks} ranks, {per_node} per node)"
        )


def _cpus_per_rank(site: Site, ranks_per_node: int, request: Request) -> int:
    """The descriptor's cpus_per_task, else the node's cores shared by its ranks."""
    node, s = site.node, site.scheduler
    assert node is not None  # plan_job checked it
    cpus = s.cpus_per_task or max(node.cores // ranks_per_node, 1)
    hw_threads = node.cores * (s.threads_per_core or 1)
    if cpus * ranks_per_node > hw_threads and s.cpus_per_task is None:
        # more ranks than CPUs, with no cpus_per_task given: the request is what is too big
        local = request.ranks is not None and site.scheduler.kind == "local"
        asked = f"--ranks {request.ranks}" if local else f"{ranks_per_node} ranks per node"
        fix = f"use --ranks {hw_threads} or fewer" if local else (
            f"set workers_per_node to {hw_threads} or fewer")  # fmt: skip
        raise PlanError(
            f"{asked}: site {site.name}'s node has {hw_threads} CPUs ({node.cores} cores × "
            f"{s.threads_per_core or 1} thread(s) used per core), at least one per rank; {fix}"
        )
    if cpus * ranks_per_node > hw_threads:
        raise PlanError(
            f"site {site.name}: scheduler.cpus_per_task {cpus} × {ranks_per_node} ranks per node "
            f"is over the node's {hw_threads} CPUs ({node.cores} cores × "
            f"{s.threads_per_core or 1} thread(s) used per core)"
        )
    return cpus


def _ranks(
    site: Site,
    request: Request,
    per_node: int,
    node_gpus: int,
    gpus_per_rank: int,
    ranks_per_gpu: int,
) -> int:
    if request.gpus is not None:
        if not node_gpus:
            raise PlanError(
                f"site {site.name} has no GPUs; ask for --nodes or --ranks instead of --gpus"
            )
        if site.scheduler.kind == "local":
            return request.gpus
        if gpus_per_rank and request.gpus % gpus_per_rank:
            raise PlanError(
                f"site {site.name} gives each rank {gpus_per_rank} GPUs; --gpus must be a "
                f"multiple of {gpus_per_rank} (got {request.gpus})"
            )
        return request.gpus // gpus_per_rank if gpus_per_rank else request.gpus * ranks_per_gpu
    if request.nodes is not None:
        return request.nodes * per_node
    ranks = request.ranks or 1
    if node_gpus and ranks_per_gpu > 1 and ranks % ranks_per_gpu:
        raise PlanError(
            f"site {site.name} runs {ranks_per_gpu} ranks per GPU; --ranks must be a multiple "
            f"of {ranks_per_gpu} (got {ranks})"
        )
    if node_gpus and gpus_per_rank > 1 and ranks > per_node and ranks % per_node:
        raise PlanError(
            f"site {site.name} gives each rank {gpus_per_rank} GPUs, {per_node} ranks per node; "
            f"--ranks over one node must be a multiple of {per_node} (got {ranks})"
        )
    return ranks


def _walltime(
    site: Site, request: Request, rounded: Callable[[int], int], warns: bool = False
) -> int:
    """The job's walltime in seconds. ``warns``: the scheduler signals the job CHECKPOINT_LEAD_S
    before the limit (to checkpoint and requeue), so a shorter walltime is refused: its job would
    be warned before it had started, checkpoint at once and requeue, again and again."""
    wall = request.walltime or site.limits.default_walltime or DEFAULT_WALLTIME
    try:
        wall_s = walltime_seconds(wall)
    except ValueError as exc:
        raise PlanError(f"--walltime: {exc}") from None
    if wall_s <= 0:
        raise PlanError("--walltime must be longer than zero")
    limit_s = walltime_seconds(site.limits.max_walltime)
    if request.walltime is None:
        wall_s = min(wall_s, limit_s)
    wall_s = rounded(wall_s)
    if wall_s > limit_s:
        shown = (
            wall
            if rounded(walltime_seconds(wall)) == walltime_seconds(wall)
            else (f"{wall} (rounded up to {format_walltime(wall_s)}, the scheduler's resolution)")
        )
        raise PlanError(
            f"--walltime {shown} is over site {site.name}'s limit of {format_walltime(limit_s)}"
        )
    if warns and wall_s < MIN_WALLTIME_S:
        raise PlanError(
            f"--walltime {format_walltime(wall_s)} is too short: the scheduler warns the job "
            f"{CHECKPOINT_LEAD_S} s before its limit to checkpoint it, so a job needs at least "
            f"{format_walltime(MIN_WALLTIME_S)}"
        )
    return wall_s
