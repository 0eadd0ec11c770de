"""The 3DGAN's physics figure of merit: generated vs simulated showers, per energy bin.

As the seed's validation plots do (sampling fraction, longitudinal and transverse shower shapes
per primary-energy bin), each shower is reduced to four features:

- ``sampling_fraction``: visible energy / primary energy;
- ``depth_mean`` and ``depth_rms``: the energy-weighted mean and spread of the depth (layers);
- ``width_rms``: the energy-weighted transverse spread, √(σx² + σy²) (cells).

The figure of merit is the mean, over energy bins and features, of the relative difference
between the generated and the simulated mean of the feature in that bin: 0 is perfect agreement,
0.1 means the GAN is off by 10 % on average. ``bin_sums`` gives per-bin counts and sums that
ranks add with one allreduce; ``figure_of_merit`` is a pure function of two such tables.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

FEATURES = ("sampling_fraction", "depth_mean", "depth_rms", "width_rms")
ENERGY_BINS = (10.0, 50.0, 100.0, 200.0, 300.0, 500.0)  # GeV, bin edges


def shower_features(images: torch.Tensor, energy: torch.Tensor) -> torch.Tensor:
    """(B, F) features of showers ``images`` (B, X, Y, Z) in GeV with primary ``energy`` (B,)."""
    images = images.float()
    total = images.sum(dim=(1, 2, 3))
    safe = total.clamp_min(1e-12)[:, None]
    out = [total / energy]
    spreads = []
    for dims, axis in (((1, 2), 3), ((2, 3), 1), ((1, 3), 2)):  # z, then x, y profiles
        profile = images.sum(dim=dims) / safe
        pos = torch.arange(images.shape[axis], device=images.device, dtype=images.dtype)
        mean = (profile * pos).sum(1)
        var = (profile * (pos - mean[:, None]) ** 2).sum(1)
        if axis == 3:
            out += [mean, var.sqrt()]
        else:
            spreads.append(var)
    out.append((spreads[0] + spreads[1]).sqrt())
    return torch.stack(out, dim=1)


def bin_sums(
    features: torch.Tensor, energy: torch.Tensor, edges: Sequence[float] = ENERGY_BINS
) -> torch.Tensor:
    """(bins, 1 + F): the number of showers per energy bin and their features' sums."""
    e = torch.as_tensor(edges, dtype=energy.dtype, device=energy.device)
    which = (torch.bucketize(energy, e, right=True) - 1).clamp(0, len(edges) - 2)
    table = torch.zeros(len(edges) - 1, 1 + features.shape[1], device=features.device)
    table.index_add_(0, which, torch.cat([torch.ones_like(features[:, :1]), features], 1).float())
    return table


def bin_means(sums: np.ndarray) -> np.ndarray:
    """Per-bin feature means from ``bin_sums`` (NaN where a bin is empty)."""
    sums = np.asarray(sums, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums[:, 1:] / sums[:, :1]


def figure_of_merit(real: np.ndarray, generated: np.ndarray) -> tuple[float, dict[str, float]]:
    """Mean relative difference of the generated per-bin feature means from the simulated ones,
    over the bins that both have, and the same per feature. Inputs: (bins, F) means."""
    real, generated = np.asarray(real, np.float64), np.asarray(generated, np.float64)
    if real.shape != generated.shape or real.ndim != 2:
        raise ValueError(f"tables of different shapes: {real.shape} and {generated.shape}")
    ok = np.isfinite(real).all(1) & np.isfinite(generated).all(1) & (np.abs(real) > 0).all(1)
    if not ok.any():
        return float("nan"), {}
    rel = np.abs(generated[ok] - real[ok]) / np.abs(real[ok])
    per_feature = rel.mean(axis=0)
    names = FEATURES if real.shape[1] == len(FEATURES) else tuple(map(str, range(real.shape[1])))
    return float(rel.mean()), {n: float(v) for n, v in zip(names, per_feature, strict=True)}
