"""How numbers read in tables, reports and messages: durations, counts, mean ± std.

A leaf module (imports nothing of hpcscale's, nothing outside the standard library), shared by
the CLI's tables and the reports (``hpcscale.tables``, ``hpcscale.analysis``).
"""

from __future__ import annotations

import math
import statistics
from typing import Any


def duration_text(seconds: float | None) -> str:
    """A duration in the unit that reads best: 0.25 s, 12.3 s, 4 min 5 s, 2 h 50 min."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min {secs} s" if secs else f"{minutes} min"


def plural(n: int, word: str) -> str:
    """``1 rank``, ``2 ranks``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def mean_std(values: list[float | None]) -> tuple[float, float] | None:
    """Mean and sample standard deviation (n − 1; 0 for one value) of the finite values; None for
    none."""
    xs = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not xs:
        return None
    return statistics.fmean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0


def params_text(params: dict[str, Any]) -> str:
    """A point of a sweep or search, ``lr=0.00123 batch=8``, for progress lines and tables."""
    return " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in params.items())  # fmt: skip
