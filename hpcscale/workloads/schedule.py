"""Learning-rate scaling with ranks, the one mechanism every workload shares (the core's
``--lr-scaling none|linear|sqrt`` and ``--warmup-epochs``, Goyal et al. 2017)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch

Scaling = Literal["none", "linear", "sqrt"]


def scale_factor(scaling: str, world: int) -> float:
    """How many times the one-rank learning rate the full rate of ``world`` ranks is."""
    return {"none": 1.0, "linear": float(world), "sqrt": math.sqrt(world)}[scaling]


def lr_factor(
    step: int,
    scaling: str,
    world: int,
    warmup_epochs: float,
    steps_per_epoch: int,
    milestones: Sequence[int] = (),
) -> float:
    """The multiplier of the one-rank learning rate at ``step``: it ramps linearly from 1 to
    ``scale_factor`` over ``warmup_epochs`` (Goyal et al.'s gradual warm-up), then drops tenfold
    at each epoch in ``milestones``."""
    k = scale_factor(scaling, world)
    warm = max(warmup_epochs * steps_per_epoch, 1)
    adj = 1.0 + (k - 1.0) * min(step / warm, 1.0)
    return adj * 0.1 ** sum(step / steps_per_epoch >= b for b in milestones)


def lr_schedule(
    optimizer: torch.optim.Optimizer,
    scaling: str,
    world: int,
    warmup_epochs: float,
    steps_per_epoch: int,
    milestones: Sequence[int] = (),
) -> torch.optim.lr_scheduler.LambdaLR:
    """A schedule for an optimizer built with the one-rank learning rate (see ``lr_factor``)."""

    def factor(step: int) -> float:
        return lr_factor(step, scaling, world, warmup_epochs, steps_per_epoch, milestones)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def fused_on(device: torch.device) -> bool | None:
    """``fused=`` for torch.optim's Adam(W) and SGD: one kernel for every parameter on a GPU
    (a step of a few small layers is bound by launching the foreach version's ~10 kernels per
    operation); the CPU keeps its default."""
    return True if device.type == "cuda" else None
