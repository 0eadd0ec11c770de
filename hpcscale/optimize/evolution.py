"""The evolutionary algorithm of seed 004: a population, the fittest kept, children made by
random interpolation between two parents plus a small mutation, one generation evaluated in
parallel.

Written here rather than taken from a library: the seed's operators are a few lines, and a
generation is a pure function of the trials before it and the seed, which is what resuming an
interrupted search needs (the same generation is made again, its listed trials are not re-run).
Points live in the unit cube (``space``); children are clipped to it, so every option stays
within its bounds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def fittest(
    scored: Sequence[tuple[np.ndarray, float]], population: int, maximize: bool
) -> list[np.ndarray]:
    """The ``population`` best points of all evaluated so far (the fittest are kept from one
    generation to the next: a parent stays until better children displace it)."""
    ranked = sorted(scored, key=lambda xv: xv[1], reverse=maximize)
    return [x for x, _ in ranked[:population]]


def children(
    parents: Sequence[np.ndarray], count: int, rng: np.random.Generator, mutation: float
) -> np.ndarray:
    """``count`` children: each of two distinct random parents a, b gives a + w·(b − a) with
    w uniform in [0, 1] per coordinate (a point of the box they span), plus Gaussian noise of
    spread ``mutation``, clipped to the unit cube."""
    pool = np.asarray(parents, dtype=float)
    out = np.empty((count, pool.shape[1]))
    for i in range(count):
        a, b = rng.choice(len(pool), size=2, replace=False)
        w = rng.random(pool.shape[1])
        child = pool[a] + w * (pool[b] - pool[a]) + rng.normal(0.0, mutation, pool.shape[1])
        out[i] = np.clip(child, 0.0, 1.0)
    return out


def generation(
    history: Sequence[tuple[np.ndarray, float | None]],
    number: int,
    size: int,
    dims: int,
    *,
    population: int,
    mutation: float,
    maximize: bool,
    seed: int,
) -> np.ndarray:
    """Generation ``number``'s ``size`` points from the trials of the generations before it
    (``history``: point and figure of merit, None for a failed trial). Generation 0, or one
    with fewer than two scored trials to breed from, is uniform random. Deterministic: the
    same history, number and seed give the same points."""
    rng = np.random.default_rng([seed, number])
    scored = [(np.asarray(x, dtype=float), float(v)) for x, v in history if v is not None]
    if number == 0 or len(scored) < 2:
        return rng.random((size, dims))
    return children(fittest(scored, population, maximize), size, rng, mutation)
