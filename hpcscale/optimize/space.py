"""A search space's points as option values and as vectors in the unit cube [0, 1]^d.

The evolutionary step works in the unit cube (a log range is uniform in its logarithm), so
interpolation and mutation treat every option alike and stay within bounds by clipping.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hpcscale.spec import Param, Value


def decode(space: dict[str, Param], unit: np.ndarray) -> dict[str, Value]:
    """Option values for a point of the unit cube (one coordinate per option, in order)."""
    params: dict[str, Value] = {}
    for (name, p), u in zip(space.items(), np.clip(unit, 0.0, 1.0), strict=True):
        if p.choices is not None:
            params[name] = p.choices[min(int(u * len(p.choices)), len(p.choices) - 1)]
            continue
        assert p.low is not None and p.high is not None  # Param checked it
        if p.log:
            x = math.exp(math.log(p.low) + float(u) * (math.log(p.high) - math.log(p.low)))
        else:
            x = p.low + float(u) * (p.high - p.low)
        x = min(max(x, p.low), p.high)
        params[name] = round(x) if p.type == "int" else float(f"{x:.6g}")
    return params


def encode(space: dict[str, Param], params: dict[str, Any]) -> np.ndarray:
    """The unit-cube point of option values (the inverse of ``decode``, up to rounding)."""
    out = []
    for name, p in space.items():
        x = params[name]
        if p.choices is not None:
            texts = [str(c) for c in p.choices]
            out.append((texts.index(str(x)) + 0.5) / len(p.choices))
            continue
        assert p.low is not None and p.high is not None
        x = min(max(float(x), p.low), p.high)
        if p.log:
            u = (math.log(x) - math.log(p.low)) / (math.log(p.high) - math.log(p.low))
        else:
            u = (x - p.low) / (p.high - p.low)
        out.append(u)
    return np.clip(np.asarray(out, dtype=float), 0.0, 1.0)
