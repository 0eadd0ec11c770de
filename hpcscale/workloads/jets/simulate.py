"""Simulated boosted-top and QCD jet images, 8 channels × 125 × 125 (seed 003's E2E benchmark).

Not CMS's simulation: a fast toy whose channels differ between the classes the way the physics
makes them differ. The image is an η–φ window of 125 ECAL crystals (0.0174 each) around the jet
axis; jets have pT 400–600 GeV.

- Top (label 1): three prongs (b and the W's two quarks) about 2m/pT apart, sharing the jet's
  momentum; the b prong's tracks come from a decay vertex millimetres away, so their impact
  parameters d0 and dz are large.
- QCD (label 0): one hard prong with wider soft radiation; a third of them split into a second,
  softer prong (gluon splitting), and a few carry a displaced heavy-flavour decay, so that the
  classes overlap a little.

Channels: 0 track pT (GeV), 1 |d0| (mm), 2 |dz| (mm), 3–5 hits in the three barrel pixel layers
(where each track crosses them: further from the axis for softer tracks and larger d0), 6 ECAL
(photons and electrons, part of the hadrons' energy, spread over 3 × 3 crystals), 7 HCAL (hadrons,
in towers of 5 × 5 crystals). Pile-up adds soft tracks with large dz everywhere.
"""

from __future__ import annotations

import numpy as np

from hpcscale.data.tensors import SparseSample

SIDE = 125
CHANNELS = ("track_pt", "track_d0", "track_dz", "pixel_1", "pixel_2", "pixel_3", "ecal", "hcal")
SHAPE = (len(CHANNELS), SIDE, SIDE)
KIND = "jets"
SCALARS = {"label": "int8", "pt": "float32"}
CLASSES = ("qcd", "top")
PIXEL_RAD = 0.0174  # η–φ size of one pixel (an ECAL crystal)
TOP_MASS = 173.0


def _prongs(rng: np.random.Generator, top: bool, pt: float) -> list[tuple[float, float, float]]:
    """(η, φ offset in pixels, momentum fraction) of each hard prong."""
    if top:
        spread = 2 * TOP_MASS / pt / PIXEL_RAD  # ≈ 40 pixels
        fractions = rng.dirichlet([4.0, 3.0, 3.0])
        angles = rng.uniform(0, 2 * np.pi) + np.array([0.0, 2.1, 4.2]) + rng.normal(0, 0.3, 3)
        radii = spread * rng.uniform(0.35, 0.7, 3)
        parts = zip(radii, angles, fractions, strict=True)
        prongs = [(r * np.cos(a), r * np.sin(a), f) for r, a, f in parts]
    else:
        prongs = [(rng.normal(0, 1.5), rng.normal(0, 1.5), 1.0)]
        if rng.random() < 0.35:  # gluon splitting: a second, softer prong
            z = rng.uniform(0.1, 0.35)
            r, a = rng.uniform(8, 35), rng.uniform(0, 2 * np.pi)
            prongs = [(prongs[0][0], prongs[0][1], 1 - z), (r * np.cos(a), r * np.sin(a), z)]
    return prongs


def jet(i: int, seed: int) -> SparseSample:
    """Jet image ``i`` of the data set with ``seed``: even or odd labels drawn at random."""
    rng = np.random.default_rng([seed, 3, i])
    top = bool(rng.random() < 0.5)
    pt = float(rng.uniform(400, 600))
    img = np.zeros(SHAPE, dtype=np.float32)
    prongs = _prongs(rng, top, pt)
    b_prong = 0 if top else -1  # the b quark: the first prong
    heavy = top or rng.random() < 0.08  # QCD with a b or c decay
    for k, (x0, y0, frac) in enumerate(prongs):
        n = max(2, int(rng.poisson(6 + 14 * frac)))
        z = rng.dirichlet(np.full(n, 0.6)) * frac * pt
        width = (4.0 if top else 6.5) * rng.uniform(0.7, 1.3)
        x = x0 + rng.normal(0, width, n) * (1 + 3 / (1 + z))  # soft particles spread wider
        y = y0 + rng.normal(0, width, n) * (1 + 3 / (1 + z))
        displaced = heavy and (k == b_prong or not top)
        _deposit(img, rng, x, y, z, displaced)
    n_pu = int(rng.poisson(12))  # pile-up and underlying event: soft, everywhere, other vertices
    x, y = rng.uniform(-62, 62, n_pu), rng.uniform(-62, 62, n_pu)
    _deposit(img, rng, x, y, rng.exponential(1.0, n_pu) + 0.5, False, pileup=True)
    nz = np.nonzero(img)
    return SparseSample(
        np.stack(nz, axis=1).astype(np.int16), img[nz], {"label": int(top), "pt": pt}
    )


def _deposit(
    img: np.ndarray,
    rng: np.random.Generator,
    x: np.ndarray,
    y: np.ndarray,
    pt: np.ndarray,
    displaced: bool,
    pileup: bool = False,
) -> None:
    """Particles at pixel offsets (x, y) from the centre with momenta ``pt`` into the channels."""
    n = pt.size
    kind = rng.choice(3, n, p=[0.62, 0.25, 0.13])  # charged hadron, photon, neutral hadron
    cx = np.round(x + SIDE // 2).astype(int)
    cy = np.round(y + SIDE // 2).astype(int)
    inside = (cx >= 0) & (cx < SIDE) & (cy >= 0) & (cy < SIDE)
    for j in np.flatnonzero(inside):
        px, py, p = cx[j], cy[j], float(pt[j])
        if kind[j] == 0:  # a track
            img[0, px, py] += p
            if displaced:
                d0, dz = rng.exponential(0.6), rng.exponential(0.8)
            else:
                d0, dz = abs(rng.normal(0, 0.02)), abs(rng.normal(0, 0.05))
            if pileup:
                dz = rng.uniform(1, 40)
            img[1, px, py] = max(img[1, px, py], d0)
            img[2, px, py] = max(img[2, px, py], dz)
            for layer in range(3):  # bending grows with radius and as 1/pT; d0 shifts it
                shift = (layer + 1) * (0.8 / max(p, 0.3) + 0.4 * d0)
                lx = int(np.clip(round(px + shift * rng.choice([-1, 1])), 0, SIDE - 1))
                img[3 + layer, lx, py] += 1.0
            _spread(img, 6, px, py, p * rng.uniform(0.05, 0.3), 1)  # a MIP-ish ECAL deposit
            _spread(img, 7, px, py, p * rng.uniform(0.4, 0.8), 2)
        elif kind[j] == 1:
            _spread(img, 6, px, py, p * rng.normal(1.0, 0.03), 1)
        else:
            _spread(img, 7, px, py, p * rng.normal(1.0, 0.2), 2)


def _spread(img: np.ndarray, ch: int, px: int, py: int, energy: float, half: int) -> None:
    """ECAL (half 1: 3 × 3 crystals around the hit) or HCAL (half 2: the 5 × 5 tower)."""
    if energy <= 0:
        return
    if half == 2:  # HCAL towers are aligned 5 × 5 blocks
        px, py = px // 5 * 5 + 2, py // 5 * 5 + 2
    a, b = max(px - half, 0), min(px + half + 1, SIDE)
    c, d = max(py - half, 0), min(py + half + 1, SIDE)
    if half == 1:
        img[ch, a:b, c:d] += 0.1 * energy / ((b - a) * (d - c))
        img[ch, px, py] += 0.9 * energy
    else:
        img[ch, a:b, c:d] += energy / ((b - a) * (d - c))


def generate(out, n_events: int, **kwargs):  # type: ignore[no-untyped-def]
    """``hpcscale data generate --workload cms-jets``: ``n_events`` jet images into ``out``."""
    from hpcscale.data.tensors import generate as generate_tensors

    kwargs.pop("resolution", None)  # fixed geometry
    return generate_tensors(
        out, n_events, kind=KIND, shape=SHAPE, scalars=SCALARS, simulate=jet,
        meta={"channels": list(CHANNELS), "classes": list(CLASSES)}, **kwargs,
    )  # fmt: skip
