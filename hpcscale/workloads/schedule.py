"""Learning-rate schedules the workloads share."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def goyal(
    optimizer: torch.optim.Optimizer,
    world: int,
    warmup_epochs: float,
    steps_per_epoch: int,
    milestones: Sequence[int] = (),
) -> torch.optim.lr_scheduler.LambdaLR:
    """Goyal et al.'s schedule for an optimizer whose lr is already ``base_lr · world``: the
    factor ramps linearly from 1/world to 1 over ``warmup_epochs``, then drops tenfold at each
    epoch in ``milestones`` (the paper's helper: 30, 60, 80)."""
    warm = max(warmup_epochs * steps_per_epoch, 1)

    def factor(step: int) -> float:
        epoch = step / steps_per_epoch
        adj = 1.0 / world + (1 - 1.0 / world) * min(step / warm, 1.0)
        return adj * 0.1 ** sum(epoch >= b for b in milestones)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
