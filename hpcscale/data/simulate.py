"""Simulated single-particle LArTPC collection-plane events (the paper's five classes).

Not a detector simulation: a fast, physically motivated toy that gives each class the topology that
makes the paper's confusion matrix look the way it does. Lengths are in centimetres and converted
to pixels (a collection wire pitch of 0.3 cm at 3600 pixels), so a 400 × 400 event is a
down-sampled 3600 × 3600 one. Charge is in units of a minimum-ionising particle's deposit per cm.

- μ+: long straight track, dE/dx rising to a Bragg peak, Michel electron at the end (easy).
- e±: electromagnetic shower starting at the vertex, its trunk at 1 MIP.
- γ: the same shower after a conversion gap, its trunk at 2 MIP (an e+e− pair); with no vertex
  in the image the gap is invisible, so only the trunk's dE/dx tells γ from e± (hard).
- π+: track with kinks and hadronic interactions (short proton stubs), sometimes a Michel.
- K+: short heavily ionising track, decaying at rest to μ+ (+ Michel) or π+ π0 (π+ + 2 showers),
  so that its daughters look like a π+ (hard).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CLASSES = ("gamma", "electron", "muon", "pion", "kaon")
LABELS = ("γ", "e±", "μ+", "π+", "K+")
PAPER_RESOLUTION = 3600
# MicroBooNE's collection plane: 3456 wires; 3200 time ticks (after the paper's down-sampling);
# both padded with zeros to 3600.
ACTIVE_WIRES = 3456 / PAPER_RESOLUTION
ACTIVE_TICKS = 3200 / PAPER_RESOLUTION
PITCH_CM = 0.3  # cm per pixel at 3600
X0_CM = 14.0  # radiation length of liquid argon


@dataclass(frozen=True)
class Event:
    label: int
    wire: np.ndarray  # int16, row of the image
    tick: np.ndarray  # int16, column of the image
    charge: np.ndarray  # float32


class _Canvas:
    """Collects charge deposits in centimetres; ``finish`` turns them into a sparse image."""

    def __init__(self, rng: np.random.Generator, resolution: int) -> None:
        self.rng = rng
        self.resolution = resolution
        self.px_cm = PITCH_CM * PAPER_RESOLUTION / resolution
        self.xs: list[np.ndarray] = []
        self.ys: list[np.ndarray] = []
        self.qs: list[np.ndarray] = []

    def track(
        self,
        start: np.ndarray,
        angle: float,
        length_cm: float,
        mip: float | np.ndarray = 1.0,
        bragg: float = 0.0,
        scatter: float = 0.01,
    ) -> tuple[np.ndarray, float]:
        """Deposit a track; returns its end point and final direction (radians).

        ``bragg`` is the A of dE/dx = A · (residual range in cm)^-0.42 (in MIP units), so heavier
        particles rise more steeply near their end; 0 means no Bragg peak (a through-going track).
        """
        step = 0.5 * self.px_cm
        n = max(int(length_cm / step), 1)
        angles = angle + np.cumsum(self.rng.normal(0.0, scatter, n))
        xs = start[0] + np.cumsum(step * np.cos(angles))
        ys = start[1] + np.cumsum(step * np.sin(angles))
        dedx = np.full(n, 1.0) * mip
        if bragg:
            residual = np.maximum(length_cm - step * np.arange(1, n + 1), 0.3)
            dedx = np.maximum(dedx, np.minimum(bragg * residual**-0.42, 12.0))
        self.xs.append(xs)
        self.ys.append(ys)
        self.qs.append(dedx * step)
        return np.array([xs[-1], ys[-1]]), float(angles[-1])

    def shower(self, start: np.ndarray, angle: float, energy_mev: float, trunk_mip: float) -> None:
        """An electromagnetic shower: a trunk, then branches spread along a gamma profile."""
        trunk = self.rng.uniform(0.4, 1.0) * X0_CM
        end, _ = self.track(start, angle, trunk, mip=trunk_mip, scatter=0.03)
        n_branches = int(np.clip(energy_mev / 12.0, 4, 120))
        # Longitudinal profile: depth ~ Gamma(a, X0/b) with a growing logarithmically in energy.
        a = 1.0 + 0.5 * np.log(max(energy_mev, 10.0) / 10.0)
        depths = self.rng.gamma(a + 1.0, X0_CM / 1.2, n_branches)
        for depth in depths:
            along = angle + self.rng.normal(0.0, 0.12)
            origin = end + depth * np.array([np.cos(along), np.sin(along)])
            self.track(
                origin,
                angle + self.rng.normal(0.0, 0.45),
                self.rng.exponential(5.0) + 1.0,
                mip=1.0,
                scatter=0.15,
            )

    def michel(self, start: np.ndarray) -> None:
        self.track(start, self.rng.uniform(0, 2 * np.pi), self.rng.uniform(4.0, 18.0), scatter=0.2)

    def finish(self, label: int, noise_rate: float) -> Event:
        r = self.resolution
        rng = self.rng
        x = np.concatenate(self.xs) / self.px_cm
        y = np.concatenate(self.ys) / self.px_cm
        q = np.concatenate(self.qs) * rng.normal(1.0, 0.08, x.size).clip(0.5, 1.5)
        # Diffusion: each deposit spreads over three ticks.
        wire = np.repeat(np.rint(x), 3)
        tick = np.rint(np.repeat(y, 3) + np.tile([-1.0, 0.0, 1.0], x.size))
        q = np.repeat(q, 3) * np.tile([0.2, 0.6, 0.2], x.size)
        # Electronic noise: sparse low-charge hits anywhere in the active region.
        n_noise = rng.poisson(noise_rate * r * r)
        wire = np.concatenate([wire, rng.integers(0, int(r * ACTIVE_WIRES), n_noise)])
        tick = np.concatenate([tick, rng.integers(0, int(r * ACTIVE_TICKS), n_noise)])
        q = np.concatenate([q, np.abs(rng.normal(0.0, 0.15, n_noise))])
        inside = (wire >= 0) & (wire < r * ACTIVE_WIRES) & (tick >= 0) & (tick < r * ACTIVE_TICKS)
        flat = wire[inside].astype(np.int64) * r + tick[inside].astype(np.int64)
        keys, inverse = np.unique(flat, return_inverse=True)
        charge = np.bincount(inverse, weights=q[inside]).astype(np.float32)
        return Event(
            label=label,
            wire=(keys // r).astype(np.int16),
            tick=(keys % r).astype(np.int16),
            charge=charge,
        )


def simulate(
    label: int,
    rng: np.random.Generator,
    resolution: int = PAPER_RESOLUTION,
    noise_rate: float = 2e-5,
) -> Event:
    """One event of class ``label`` (index into ``CLASSES``)."""
    c = _Canvas(rng, resolution)
    size_cm = np.array([ACTIVE_WIRES, ACTIVE_TICKS]) * PAPER_RESOLUTION * PITCH_CM
    vertex = rng.uniform(0.2, 0.8, 2) * size_cm
    angle = rng.uniform(0.0, 2 * np.pi)
    name = CLASSES[label]
    if name == "muon":
        end, _ = c.track(vertex, angle, rng.uniform(60.0, 300.0), bragg=8.1, scatter=0.01)
        c.michel(end)
    elif name == "electron":
        c.shower(vertex, angle, rng.uniform(100.0, 1000.0), trunk_mip=1.0)
    elif name == "gamma":
        gap = rng.exponential(20.0)
        start = vertex + gap * np.array([np.cos(angle), np.sin(angle)])
        c.shower(start, angle, rng.uniform(100.0, 1000.0), trunk_mip=2.0)
    elif name == "pion":
        _pion(c, vertex, angle, rng.uniform(40.0, 200.0))
    else:  # kaon
        end, _ = c.track(vertex, angle, rng.uniform(5.0, 30.0), mip=1.6, bragg=15.4, scatter=0.02)
        if rng.random() < 0.7:  # K+ → μ+ ν, 236 MeV/c muon: about 54 cm
            mu_end, _ = c.track(end, rng.uniform(0, 2 * np.pi), rng.normal(54.0, 2.0), bragg=8.1)
            c.michel(mu_end)
        else:  # K+ → π+ π0, 205 MeV/c pion, π0 → γγ
            _pion(c, end, rng.uniform(0, 2 * np.pi), rng.uniform(25.0, 45.0))
            for _ in range(2):
                a = rng.uniform(0, 2 * np.pi)
                start = end + rng.exponential(20.0) * np.array([np.cos(a), np.sin(a)])
                c.shower(start, a, rng.uniform(50.0, 200.0), trunk_mip=2.0)
    return c.finish(label, noise_rate)


def _pion(c: _Canvas, start: np.ndarray, angle: float, length_cm: float) -> None:
    """A π+: segments joined by kinks, hadronic interactions with proton stubs."""
    rng = c.rng
    n_kinks = rng.integers(1, 4)
    pieces = rng.dirichlet(np.ones(n_kinks + 1)) * length_cm
    point, direction = start, angle
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1
        point, direction = c.track(
            point, direction, piece, mip=1.05, bragg=9.0 if last else 0.0, scatter=0.02
        )
        if not last:
            if rng.random() < 0.6:  # a proton knocked out at the interaction
                c.track(point, rng.uniform(0, 2 * np.pi), rng.uniform(1.0, 8.0), bragg=30.0)
            direction += rng.normal(0.0, 0.6)
    if rng.random() < 0.35:  # stopped: π+ → μ+ (invisible, 4 mm) → Michel
        c.michel(point)


def labels_for(n: int, seed: int) -> np.ndarray:
    """Balanced class labels for ``n`` events in a seeded random order."""
    return np.random.default_rng([seed, 0xC1A55]).permutation(np.arange(n) % len(CLASSES))


def event(index: int, label: int, seed: int, resolution: int) -> Event:
    """Event ``index`` of a data set: deterministic in (seed, index), whoever computes it."""
    return simulate(label, np.random.default_rng([seed, index]), resolution)
