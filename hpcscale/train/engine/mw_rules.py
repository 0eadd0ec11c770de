"""The master/worker engine's rules, apart from how messages travel (``master_worker.py``):
staleness accounting, EASGD's elastic step, and the layout of the messages.

Downpour (Dean et al. 2012; mpi-learn's default): the master applies each worker's gradient as it
arrives. A gradient computed from weights of version v, arriving when the master holds version V,
is ``V - v`` updates stale; with ``max_staleness`` K, one more than K updates old is not applied
and the worker gets fresh weights instead.

EASGD (Zhang, Choromanska, LeCun 2015, asynchronous form): every τ steps a worker with local
weights x meets the master's centre c: the worker moves ``x ← x − α(x − c)`` and the master
``c ← c + α(x − c)`` (both with the values from before the meeting), α the moving rate.

GEM (Hermans & Louppe 2018, arXiv:1805.08469, as in their code): the target is one momentum
process; each worker keeps its proxy ``m ← μ m + Δ`` of its own updates Δ and sends
``π ⊙ Δ`` with ``π = clip((κ|m| − |Δc|) / (|Δ| + ε), 0, 5)`` elementwise, Δc how far the centre
moved between the worker's last two pulls (the other workers' share): the collective's energy
stays at or below the proxy's. The master adds what arrives. Here Δ is the step the workload's
own optimizer makes from the worker's gradient (SGD's −ηg in the paper), so GEM serves every
workload unchanged; and Δc is the move seen at the previous pull (the paper pulls just before it
sends, this engine right after), one exchange older.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import torch

# A worker's message: HEAD header fields, then the payload (gradient for downpour, the local
# weights for EASGD, in the gradient bucket's layout), then the bucket's slots (loss, metrics,
# votes). The master's reply: REPLY_HEAD fields, then weights (downpour: the master's after the
# update; EASGD: the centre before it).
HEAD = 8
KIND, VERSION, STEP, SAMPLES, WAIT_S, STOP_VOTE, REQUEUE_VOTE = range(7)
GRADIENT, PARAMS, DONE, UPDATE = 1.0, 2.0, 3.0, 4.0
REPLY_HEAD = 4
R_VERSION, R_CODE, R_APPLIED, R_STALENESS = range(4)
GO, STOP, REQUEUE = 0, 1, 2  # what the master's reply tells a worker to do next


@dataclass
class Ledger:
    """The master's version count and the staleness of every gradient that reached it."""

    max_staleness: int | None = None
    version: int = 0  # updates applied so far
    staleness: Counter[int] = field(default_factory=Counter)  # every arrival's, applied or not
    rejected: int = 0
    by_worker: dict[int, Counter[str]] = field(default_factory=dict)

    def judge(self, worker: int, pulled: int) -> tuple[bool, int]:
        """A gradient from ``worker`` computed on weights of version ``pulled``: whether to
        apply it, and its staleness. Applying it makes the next version."""
        stale = self.version - pulled
        if stale < 0:
            raise ValueError(f"worker {worker} claims version {pulled} > master's {self.version}")
        self.staleness[stale] += 1
        counts = self.by_worker.setdefault(worker, Counter())
        applied = self.max_staleness is None or stale <= self.max_staleness
        if applied:
            self.version += 1
            counts["applied"] += 1
        else:
            self.rejected += 1
            counts["rejected"] += 1
        return applied, stale

    def meet(self, worker: int, pulled: int) -> int:
        """An EASGD meeting (always taken); returns its staleness."""
        stale = self.version - pulled
        self.staleness[stale] += 1
        self.by_worker.setdefault(worker, Counter())["applied"] += 1
        self.version += 1
        return stale

    def summary(self) -> dict[str, object]:
        total = sum(self.staleness.values())
        mean = sum(k * n for k, n in self.staleness.items()) / total if total else None
        return {
            "updates": self.version,
            "rejected": self.rejected,
            "staleness": {str(k): self.staleness[k] for k in sorted(self.staleness)},
            "staleness_mean": mean,
            "staleness_max": max(self.staleness) if self.staleness else None,
        }


@torch.no_grad()
def elastic_centre_(centre: torch.Tensor, local: torch.Tensor, alpha: float) -> torch.Tensor:
    """The master's side of an EASGD meeting: ``centre += alpha (local - centre)``; returns the
    centre from before (what the worker moves toward)."""
    before = centre.clone()
    centre.add_(local - before, alpha=alpha)
    return before


@torch.no_grad()
def elastic_pull_(local: torch.Tensor, centre_before: torch.Tensor, alpha: float) -> None:
    """The worker's side: ``local -= alpha (local - centre_before)``."""
    local.sub_(local - centre_before, alpha=alpha)


@dataclass
class Gem:
    """A worker's side of GEM: its momentum proxy, and the scale of each update it sends."""

    kappa: float = 1.0
    momentum: float = 0.9
    eps: float = 1e-12
    proxy: torch.Tensor | None = None

    @torch.no_grad()
    def scale(self, delta: torch.Tensor, centre_moved: torch.Tensor) -> torch.Tensor:
        """π for the update ``delta`` (elementwise, in [0, 5]), after ``proxy ← μ proxy + Δ``."""
        if self.proxy is None:
            self.proxy = torch.zeros_like(delta)
        self.proxy.mul_(self.momentum).add_(delta)
        pi = (self.kappa * self.proxy.abs() - centre_moved.abs()) / (delta.abs() + self.eps)
        return pi.clamp_(0.0, 5.0)
