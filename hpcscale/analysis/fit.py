"""Scaling-law fits: y = c · N^k by least squares in log-log space, with 95 % intervals.

A power law is a straight line in log-log space; its slope k is the exponent (α for TTL, β for
epoch rate). The interval is the slope's Student-t confidence interval (n − 2 degrees of
freedom), so it needs three or more sizes. Where the law stops holding, log y curves in log N:
``bends`` is true when a quadratic term's own 95 % interval excludes zero (four or more sizes).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class PowerLaw:
    exponent: float
    prefactor: float
    ci_low: float | None
    ci_high: float | None
    points: int
    r2: float | None
    bends: bool | None  # None: too few points to tell
    curvature: float | None
    max_residual: float | None  # largest |log10 residual|: 0.1 ≈ 26 % off the line

    def as_dict(self) -> dict:
        return asdict(self)

    def text(self) -> str:
        if self.ci_low is None:
            return f"{self.exponent:+.2f} (no interval from {self.points} points)"
        return f"{self.exponent:+.2f} [{self.ci_low:+.2f}, {self.ci_high:+.2f}]"


def _t975(dof: int) -> float:
    from scipy import stats  # slow to import (~0.5 s), needed only for a fit's interval

    return float(stats.t.ppf(0.975, dof))


def fit_power_law(n: list[float] | np.ndarray, y: list[float] | np.ndarray) -> PowerLaw | None:
    """Fit y ∝ N^k on the positive, finite pairs; None with fewer than two distinct sizes."""
    n_arr, y_arr = np.asarray(n, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(n_arr) & np.isfinite(y_arr) & (n_arr > 0) & (y_arr > 0)
    x, v = np.log10(n_arr[keep]), np.log10(y_arr[keep])
    if np.unique(x).size < 2:
        return None
    design = np.column_stack([np.ones_like(x), x])
    coef, *_ = np.linalg.lstsq(design, v, rcond=None)
    resid = v - design @ coef
    k = x.size
    ci_low = ci_high = r2 = None
    if k > 2:
        s2 = float(resid @ resid) / (k - 2)
        se = math.sqrt(s2 / float(((x - x.mean()) ** 2).sum()))
        half = _t975(k - 2) * se
        ci_low, ci_high = coef[1] - half, coef[1] + half
        total = float(((v - v.mean()) ** 2).sum())
        r2 = 1 - float(resid @ resid) / total if total > 0 else 1.0
    bends, curvature = _curvature(x, v)
    return PowerLaw(
        exponent=float(coef[1]),
        prefactor=float(10 ** coef[0]),
        ci_low=ci_low,
        ci_high=ci_high,
        points=k,
        r2=r2,
        bends=bends,
        curvature=curvature,
        max_residual=float(np.abs(resid).max()) if k > 2 else None,
    )


def _curvature(x: np.ndarray, v: np.ndarray) -> tuple[bool | None, float | None]:
    if np.unique(x).size < 4:
        return None, None
    xc = x - x.mean()
    design = np.column_stack([np.ones_like(xc), xc, xc**2])
    coef, *_ = np.linalg.lstsq(design, v, rcond=None)
    resid = v - design @ coef
    dof = x.size - 3
    s2 = float(resid @ resid) / dof
    cov = s2 * np.linalg.inv(design.T @ design)
    half = _t975(dof) * math.sqrt(cov[2, 2])
    return bool(abs(coef[2]) > max(half, 1e-9)), float(coef[2])
