"""Simulated electron showers in a 25 × 25 × 25 cell calorimeter (seed 002's data set).

Not Geant4: a parametrised shower of the kind fast simulations use, with the properties the
3DGAN's physics checks look at. Depth is in radiation lengths (one layer per X0, a tungsten
sampling calorimeter), transverse sizes in cells (a Molière radius of 1.8 cells).

- Longitudinal profile: a gamma distribution in depth t with b = 0.5 and its maximum at
  t_max = ln(E/E_c) − 0.5 (E_c = 8 MeV), fluctuating from shower to shower: higher energies
  peak deeper and leak more out of the back.
- Transverse profile: a core and a halo (Grindhammer's f(r) = 2rR²/(r²+R²)²) that widen with
  depth.
- Sampling fraction: about 2 % of the energy is seen; it falls slowly with energy (saturation)
  and by leakage, and fluctuates with a stochastic term of 15 %/√E.
- Soft hits (low-energy photons and neutrons far from the axis) with energies spread over five
  decades fill about a fifth of the cells, so the visible cell energies span more than seven
  orders of magnitude, as in the seed's data set.

Cell values are visible energies in GeV. ``shower(i, seed)`` depends only on (seed, i).
"""

from __future__ import annotations

import numpy as np

from hpcscale.data.tensors import SparseSample

SIDE = 25
SHAPE = (SIDE, SIDE, SIDE)  # x, y (transverse), z (depth, one layer per X0)
KIND = "calo3d"
SCALARS = {"energy": "float32"}  # the primary electron's energy, GeV
E_MIN, E_MAX = 10.0, 500.0  # GeV
E_CRIT = 0.008  # GeV, tungsten
MOLIERE_CELLS = 1.8
B_LONG = 0.5


def sampling_fraction(energy: np.ndarray | float) -> np.ndarray | float:
    """The mean fraction of the deposited energy that is seen (before leakage)."""
    return 0.021 * (1.0 - 0.045 * np.log(np.asarray(energy) / E_MIN))


def shower(i: int, seed: int) -> SparseSample:
    """Shower ``i`` of the data set with ``seed``."""
    rng = np.random.default_rng([seed, 2, i])
    energy = float(rng.uniform(E_MIN, E_MAX))
    t_max = np.log(energy / E_CRIT) - 0.5
    a = 1.0 + B_LONG * t_max * rng.normal(1.0, 0.06)
    seen = energy * sampling_fraction(energy) * rng.normal(1.0, 0.15 / np.sqrt(energy) + 0.01)
    n = int(200 + 6 * energy)
    depth = rng.gamma(a, 1.0 / B_LONG, n)
    frac = depth / t_max
    core = rng.random(n) < np.clip(0.9 - 0.25 * frac, 0.4, 0.9)
    radius_scale = MOLIERE_CELLS * np.where(core, 0.25 + 0.1 * frac, 0.9 + 0.35 * frac)
    u = rng.random(n)
    radius = radius_scale * np.sqrt(u / (1 - u + 1e-9))
    energies = rng.gamma(2.0, 0.5, n)
    energies *= seen / energies.sum()
    # soft hits: many, far from the axis, over five decades of energy
    n_soft = int(rng.poisson(4700 + 600 * np.log(energy / E_MIN)))
    soft_depth = rng.gamma(a, 1.3 / B_LONG, n_soft)
    soft_radius = rng.exponential(6.5, n_soft)
    soft_e = 10.0 ** rng.uniform(-9.0, -3.5, n_soft)
    depth = np.concatenate([depth, soft_depth])
    radius = np.concatenate([radius, soft_radius])
    energies = np.concatenate([energies, soft_e])
    phi = rng.uniform(0, 2 * np.pi, depth.size)
    centre = SIDE / 2 + rng.normal(0, 0.25, 2)
    x = np.floor(centre[0] + radius * np.cos(phi)).astype(np.int64)
    y = np.floor(centre[1] + radius * np.sin(phi)).astype(np.int64)
    z = np.floor(depth).astype(np.int64)
    inside = (x >= 0) & (x < SIDE) & (y >= 0) & (y < SIDE) & (z < SIDE)  # the rest leaks
    flat = (x[inside] * SIDE + y[inside]) * SIDE + z[inside]
    cells = np.bincount(flat, weights=energies[inside], minlength=SIDE**3)
    nz = np.flatnonzero(cells)
    index = np.stack(np.unravel_index(nz, SHAPE), axis=1).astype(np.int16)
    return SparseSample(index, cells[nz].astype(np.float32), {"energy": energy})


def generate(out, n_events: int, **kwargs):  # type: ignore[no-untyped-def]
    """``hpcscale data generate --workload 3dgan``: ``n_events`` showers into ``out``."""
    from hpcscale.data.tensors import generate as generate_tensors

    kwargs.pop("resolution", None)  # fixed geometry
    return generate_tensors(
        out, n_events, kind=KIND, shape=SHAPE, scalars=SCALARS, simulate=shower,
        meta={"energy_gev": [E_MIN, E_MAX], "cell_unit": "GeV (visible)"}, **kwargs,
    )  # fmt: skip
