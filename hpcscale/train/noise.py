"""The gradient noise scale of McCandlish et al., "An Empirical Model of Large-Batch Training"
(2018), from two gradient norms every data-parallel step already has at hand.

With per-rank gradients g_i over a minibatch of ``b`` samples and their average G over
``B = N·b`` samples, E|g_i|² = |G_true|² + tr(Σ)/b and E|G|² = |G_true|² + tr(Σ)/B, so (the
paper's appendix A.1)

    |G_true|² ≈ (B·|G_B|² − b·|G_b|²) / (B − b)
    tr(Σ)     ≈ (|G_b|² − |G_B|²) / (1/b − 1/B)

are unbiased, where |G_b|² is the mean of |g_i|² over the ranks. Each is far too noisy on one
step; their ratio B_noise = tr(Σ)/|G_true|² is taken of exponential moving averages of the two
(as the paper does), never of one step's values. Pure arithmetic: the loop feeds it floats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

EMA_DECAY = 0.95  # ≈ 20 steps of memory, as in the paper's A.1 (it leaves the constant open)


@dataclass(frozen=True)
class Estimate:
    g2: float  # unbiased |G_true|² of one step
    trace: float  # unbiased tr(Σ) of one step (per sample)


def estimate(small_sq: float, b: float, big_sq: float, big_b: float) -> Estimate:
    """One step's unbiased |G_true|² and tr(Σ) from the mean squared norm ``small_sq`` of
    gradients over ``b`` samples and the squared norm ``big_sq`` of their mean over ``big_b``."""
    if not big_b > b > 0:
        raise ValueError(f"need B > b > 0, got b={b}, B={big_b}")
    g2 = (big_b * big_sq - b * small_sq) / (big_b - b)
    trace = (small_sq - big_sq) / (1.0 / b - 1.0 / big_b)
    return Estimate(g2, trace)


class NoiseScale:
    """Exponential moving averages of |G_true|² and tr(Σ), bias-corrected as Adam's are, and
    B_noise from their ratio."""

    def __init__(self, decay: float = EMA_DECAY) -> None:
        self.decay = decay
        self.g2 = self.trace = 0.0
        self.n = 0

    def push(self, est: Estimate) -> float | None:
        """Add a step's estimate; returns the smoothed B_noise (None while not positive)."""
        if not (math.isfinite(est.g2) and math.isfinite(est.trace)):
            return self.value()
        self.n += 1
        self.g2 = self.decay * self.g2 + (1 - self.decay) * est.g2
        self.trace = self.decay * self.trace + (1 - self.decay) * est.trace
        return self.value()

    def value(self) -> float | None:
        if self.n == 0:
            return None
        correction = 1 - self.decay**self.n  # both averages share it; kept for the parts
        g2, trace = self.g2 / correction, self.trace / correction
        return trace / g2 if g2 > 0 and trace > 0 else None

    def state(self) -> list[float]:
        return [self.g2, self.trace, float(self.n)]

    def restore(self, state: list[float]) -> None:
        self.g2, self.trace, self.n = state[0], state[1], int(state[2])


def b_noise(g2: list[float], trace: list[float]) -> float | None:
    """B_noise of many steps: the ratio of the mean tr(Σ) to the mean |G_true|² (None if the
    mean |G_true|² is not positive: the gradient is all noise at this batch)."""
    if not g2 or len(g2) != len(trace):
        return None
    mg, mt = sum(g2) / len(g2), sum(trace) / len(trace)
    return mt / mg if mg > 0 and mt > 0 else None


def steps_factor(b_noise_value: float, batch: float) -> float:
    """S / S_min = 1 + B_noise / B: the steps a batch of ``batch`` needs, relative to the
    fewest possible (the paper's eq. 2.11)."""
    return 1.0 + b_noise_value / batch
