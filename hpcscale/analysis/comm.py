"""The α–β cost of an allreduce (Hockney's model; Thakur, Rabenseifner and Gropp, "Optimization
of Collective Communication Operations in MPICH", 2005), flat and hierarchical.

A message of n bytes over a link costs α + n/β. A ring allreduce of M bytes over p ranks sends
2(p−1) messages of M/p bytes one after another: 2(p−1)·α + 2(p−1)/p · M/β. A (binary) tree
reduces and then broadcasts whole messages over ⌈log2 p⌉ levels: 2⌈log2 p⌉·(α + M/β). Across
nodes (NCCL's and Horovod's hierarchical allreduce) the g ranks of a node first reduce-scatter
over the intra-node link, the n nodes then allreduce M/g bytes over the interconnect, and the
node's ranks all-gather: each intra-node half costs (g−1)·α + (g−1)/g · M/β.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Algorithm = Literal["ring", "tree", "best"]


@dataclass(frozen=True)
class LinkCost:
    bandwidth_gbs: float  # GB/s per direction (1e9 bytes)
    latency_us: float

    @property
    def alpha(self) -> float:
        return self.latency_us * 1e-6

    @property
    def beta(self) -> float:
        return self.bandwidth_gbs * 1e9


def ring_s(nbytes: float, ranks: int, link: LinkCost) -> float:
    if ranks <= 1:
        return 0.0
    return 2 * (ranks - 1) * link.alpha + 2 * (ranks - 1) / ranks * nbytes / link.beta


def tree_s(nbytes: float, ranks: int, link: LinkCost) -> float:
    if ranks <= 1:
        return 0.0
    return 2 * math.ceil(math.log2(ranks)) * (link.alpha + nbytes / link.beta)


def flat_s(nbytes: float, ranks: int, link: LinkCost, algorithm: Algorithm = "best") -> float:
    """One level: ring, tree, or the cheaper of the two (as NCCL's tuner picks)."""
    if algorithm == "ring":
        return ring_s(nbytes, ranks, link)
    if algorithm == "tree":
        return tree_s(nbytes, ranks, link)
    return min(ring_s(nbytes, ranks, link), tree_s(nbytes, ranks, link))


def allreduce_s(
    nbytes: float,
    ranks: int,
    ranks_per_node: int,
    intra: LinkCost | None,
    inter: LinkCost | None,
    algorithm: Algorithm = "best",
) -> float:
    """Seconds for one allreduce of ``nbytes`` over ``ranks`` placed ``ranks_per_node`` to a
    node. Raises ``ValueError`` when a link the placement crosses has no figures."""
    if ranks <= 1:
        return 0.0
    per_node = max(1, min(ranks_per_node, ranks))
    nodes = math.ceil(ranks / per_node)
    if nodes == 1:
        if intra is None:
            raise ValueError("no intra-node link figures")
        return flat_s(nbytes, ranks, intra, algorithm)
    if inter is None:
        raise ValueError("no inter-node link figures")
    if per_node == 1:
        return flat_s(nbytes, nodes, inter, algorithm)
    if intra is None:
        raise ValueError("no intra-node link figures")
    half = (per_node - 1) * intra.alpha + (per_node - 1) / per_node * nbytes / intra.beta
    return 2 * half + flat_s(nbytes / per_node, nodes, inter, algorithm)


def fit_link(points: list[tuple[int, float]], nbytes: float) -> LinkCost | None:
    """An effective one-level link from measured allreduce times ``(ranks, seconds)``: the ring
    model's α and β by least squares (α = 0 with one size, or where the fit would make it
    negative). None without a size above one rank or a positive time."""
    pts = [(p, t) for p, t in points if p > 1 and t > 0]
    if not pts:
        return None
    # t = a·x + c·y with x = 2(p−1) (latency terms), y = 2(p−1)/p · M (bandwidth terms)
    xs = [2 * (p - 1) for p, _ in pts]
    ys = [2 * (p - 1) / p * nbytes for p, _ in pts]
    ts = [t for _, t in pts]
    a = 0.0
    if len({p for p, _ in pts}) >= 2:
        sxx = sum(x * x for x in xs)
        syy = sum(y * y for y in ys)
        sxy = sum(x * y for x, y in zip(xs, ys, strict=True))
        sxt = sum(x * t for x, t in zip(xs, ts, strict=True))
        syt = sum(y * t for y, t in zip(ys, ts, strict=True))
        det = sxx * syy - sxy * sxy
        if det > 0:
            a = (syy * sxt - sxy * syt) / det
            c = (sxx * syt - sxy * sxt) / det
            if a >= 0 and c > 0:
                return LinkCost(bandwidth_gbs=1 / c / 1e9, latency_us=a * 1e6)
            a = 0.0
    c = sum(y * t for y, t in zip(ys, ts, strict=True)) / sum(y * y for y in ys)
    return LinkCost(bandwidth_gbs=1 / c / 1e9, latency_us=0.0) if c > 0 else None
