"""The shapes the master/worker engine can run (light: the study checks them before any rank
starts, and the engine again on every rank)."""

from __future__ import annotations

from typing import Any

from hpcscale.errors import UserError


def check(core: Any, ranks: int) -> None:
    """Refuse a job of ``ranks`` ranks that ``core`` (a ``CoreConfig``) cannot train with
    engine master-worker: a master and at least one worker, the workers in whole groups."""
    if core.engine != "master-worker":
        return
    if ranks < 2:
        raise UserError(
            "engine master-worker needs at least 2 ranks (rank 0 the master, ranks 1… "
            f"the workers); this job has {ranks}"
        )
    if getattr(core, "model_parallel", 1) > 1:
        raise UserError(
            f"--model-parallel {core.model_parallel}: engine master-worker trains whole models "
            "on each worker; use --group-size for several ranks per worker"
        )
    size, workers = core.group_size, ranks - 1
    if workers % size:
        raise UserError(
            f"--group-size {size}: the {workers} worker ranks (all but the master) do not "
            f"split into groups of {size}; use 1 + a multiple of {size} ranks"
        )
