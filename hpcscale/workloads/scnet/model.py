"""SCNet, the paper's sparse network, on the portable ops of :mod:`.sparse`.

As the published code: four ``SubmanifoldConvolution(2, filter_size=5, bias=False)`` layers
1→10→64→128→256, each followed by ELU and ``MaxPooling`` 5, 5, 4, 4; ``SparseToDense``
(256×9×9 at 3600×3600); then JishNet's dense head, ``Linear(256·s·s, 32)`` + ELU,
``Linear(32, 5)``, and a softmax (the paper's loss is cross-entropy on the probabilities).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from hpcscale.errors import UserError
from hpcscale.workloads.scnet.sparse import (
    KernelMap,
    Pooling,
    SparseMaxPool2d,
    SubmanifoldConv2d,
    kernel_map,
    linear_keys,
    pool_features,
    pool_sites,
    submanifold_conv,
)

# name: (conv channels, hidden units); same shapes as JishNet's presets
PRESETS: dict[str, tuple[tuple[int, int, int, int], int]] = {
    "scnet": ((10, 64, 128, 256), 32),
    "scnet-small": ((4, 8, 16, 16), 16),  # same geometry, far fewer FLOPs: tests, laptops
}
FILTER_SIZE = 5
POOLS = (5, 5, 4, 4)


def feature_side(resolution: int) -> int:
    """Spatial side after the four pools (9 at 3600). Submanifold convolutions keep the size and
    the pools floor, so this is resolution // 400 only when the divisions are exact."""
    side = resolution
    for k in POOLS:
        side //= k
    if side < 1:
        raise UserError(
            f"SCNet needs images of at least 400×400 (got {resolution}×{resolution}): its four "
            "max-poolings (5, 5, 4, 4) shrink the side 400-fold"
        )
    return side


class SCNet(nn.Module):
    """Sparse SCNet: submanifold conv → ELU → sparse max-pool, four times; dense head.

    ``forward(coords, features, batch_size)`` takes the active pixels of a minibatch: ``coords``
    (N, 3) int64 rows (batch index, row, column), unique, in any order; ``features`` (N, 1), the
    charge. It returns (B, classes) probabilities (``softmax=True``) or logits.
    """

    def __init__(
        self,
        resolution: int = 3600,
        channels: tuple[int, int, int, int] = PRESETS["scnet"][0],
        hidden: int = PRESETS["scnet"][1],
        classes: int = 5,
        softmax: bool = True,
        deterministic: bool = False,
    ) -> None:
        super().__init__()
        side = feature_side(resolution)
        self.resolution = resolution
        widths = (1, *channels)
        self.convs = nn.ModuleList(
            SubmanifoldConv2d(widths[i], widths[i + 1], FILTER_SIZE, deterministic=deterministic)
            for i in range(len(POOLS))
        )
        self.pools = nn.ModuleList(SparseMaxPool2d(k) for k in POOLS)
        self.fc1 = nn.Linear(channels[-1] * side * side, hidden)
        self.fc2 = nn.Linear(hidden, classes)
        self.softmax = softmax

    @classmethod
    def from_preset(
        cls,
        preset: str = "scnet",
        resolution: int = 3600,
        classes: int = 5,
        softmax: bool = True,
        deterministic: bool = False,
    ) -> SCNet:
        """SCNet with the channels and hidden width of a named preset (see ``PRESETS``)."""
        if preset not in PRESETS:
            raise UserError(f"--model {preset!r} is unknown; choose one of {', '.join(PRESETS)}")
        channels, hidden = PRESETS[preset]
        return cls(resolution, channels, hidden, classes, softmax, deterministic)

    def geometry(self, coords: torch.Tensor, batch_size: int) -> Geometry:
        """Everything the forward pass needs of the sites alone, for every level: the kernel
        map of its convolution and where its pool sends each site. About 60 small ops and one
        host sync per level: made ahead of the step (``SparsePrefetcher``, on GPUs), the step
        keeps only the arithmetic."""
        if coords.dim() != 2 or coords.shape[1] != 3:
            raise ValueError(f"SCNet wants coords (N, 3); got {tuple(coords.shape)}")
        coords = coords.long()
        shape, ordered = (self.resolution, self.resolution), False
        kmaps, poolings = [], []
        for conv, pool in zip(self.convs, self.pools, strict=True):
            kmaps.append(kernel_map(coords, shape, conv.kernel_size, ordered))
            pooling = pool_sites(coords, shape, pool.kernel_size)
            poolings.append(pooling)
            coords, shape, ordered = pooling.coords, pooling.shape, True
        return Geometry(kmaps, poolings, linear_keys(coords, shape), batch_size)

    def forward(
        self,
        coords: torch.Tensor,
        features: torch.Tensor,
        batch_size: int,
        geometry: Geometry | None = None,
    ) -> torch.Tensor:
        """Probabilities (or logits) of the minibatch whose active pixels are ``coords`` and
        ``features``; ``geometry``: ``self.geometry(coords, batch_size)``, if made already."""
        if features.shape[0] != coords.shape[0]:
            raise ValueError(
                f"SCNet wants coords (N, 3) and features (N, C); got {tuple(coords.shape)} and "
                f"{tuple(features.shape)}"
            )
        if features.dim() == 1:
            features = features.unsqueeze(1)
        if geometry is None:
            geometry = self.geometry(coords, batch_size)
        return self.layers(geometry.fit(features), geometry)

    def layers(self, features: torch.Tensor, geometry: Geometry) -> torch.Tensor:
        """The network on features with one row per site of ``geometry`` (padded rows: zeros).
        No host synchronisation and, for a padded geometry, the same shapes every call."""
        h = features
        for conv, kmap, pooling in zip(self.convs, geometry.kmaps, geometry.poolings, strict=True):
            h = F.elu(submanifold_conv(h, conv.weight, kmap, conv.deterministic))
            h = pool_features(h, pooling)
        side = geometry.poolings[-1].shape
        cells = geometry.batch_size * side[0] * side[1]
        dense = h.new_zeros(cells + 1, h.shape[1])  # + a row for padded sites' keys
        dense = dense.index_put((geometry.keys,), h)[:cells]  # (B, H, W, C) of the last level
        dense = dense.view(geometry.batch_size, side[0], side[1], -1).permute(0, 3, 1, 2)
        h = F.elu(self.fc1(torch.flatten(dense, 1)))
        h = self.fc2(h)
        return F.softmax(h, dim=1) if self.softmax else h


@dataclass
class Geometry:
    """What SCNet's layers need of a minibatch's sites (see ``SCNet.geometry``)."""

    kmaps: list[KernelMap]  # each level's neighbour table
    poolings: list[Pooling]  # each level's pool
    keys: torch.Tensor  # the last level's sites as keys into the dense (B, H, W) grid
    batch_size: int
    capacity: tuple[int, ...] | None = None  # sites per level, where padded to fixed sizes

    def tensors(self) -> list[torch.Tensor]:
        return [
            *(k.nbr for k in self.kmaps),
            *(t for p in self.poolings for t in (p.coords, p.inverse)),
            self.keys,
        ]

    def with_tensors(self, tensors: Sequence[torch.Tensor]) -> Geometry:
        """This geometry's shapes and sizes with other tensors (in ``tensors()``'s order)."""
        levels = len(self.kmaps)
        nbrs, rest, keys = tensors[:levels], tensors[levels:-1], tensors[-1]
        kmaps = [replace(k, nbr=t) for k, t in zip(self.kmaps, nbrs, strict=True)]
        poolings = [
            replace(p, coords=rest[2 * i], inverse=rest[2 * i + 1])
            for i, p in enumerate(self.poolings)
        ]
        return replace(self, kmaps=kmaps, poolings=poolings, keys=keys)

    def sizes(self) -> tuple[int, ...]:
        """Sites per level: the input's, then each pool's output."""
        return (self.kmaps[0].n, *(p.coords.shape[0] for p in self.poolings))

    def fit(self, features: torch.Tensor) -> torch.Tensor:
        """``features`` of the input's sites with the zero rows of a padded geometry appended."""
        extra = self.kmaps[0].n - features.shape[0]
        return F.pad(features, (0, 0, 0, extra)) if extra else features

    def padded(self, capacity: Sequence[int]) -> Geometry:
        """The same geometry with ``capacity[l]`` sites at level l (≥ its own): the extra sites
        have no neighbours, pool into a row past the outputs and have a key past the dense grid,
        so the real sites compute exactly what they did, and every minibatch of one capacity
        has the same shapes (what a CUDA graph needs)."""
        sizes = self.sizes()
        if len(capacity) != len(sizes) or any(c < n for c, n in zip(capacity, sizes, strict=True)):
            raise ValueError(f"capacity {tuple(capacity)} is below the sites {sizes}")
        kmaps, poolings = [], []
        for level, (kmap, pooling) in enumerate(zip(self.kmaps, self.poolings, strict=True)):
            n, cap, out_cap = sizes[level], capacity[level], capacity[level + 1]
            nbr = torch.where(kmap.nbr == n, cap, kmap.nbr)  # the sentinel: past the padded rows
            nbr = F.pad(nbr, (0, 0, 0, cap - n), value=cap)
            inverse = pooling.inverse
            inverse = torch.where(inverse == sizes[level + 1], out_cap, inverse)
            inverse = F.pad(inverse, (0, cap - n), value=out_cap)
            coords = F.pad(pooling.coords, (0, 0, 0, out_cap - sizes[level + 1]))
            kmaps.append(KernelMap(nbr, kmap.kernel_size, kmap.shape))
            poolings.append(Pooling(coords, inverse, pooling.shape))
        side = self.poolings[-1].shape
        dump = self.batch_size * side[0] * side[1]
        keys = F.pad(self.keys, (0, capacity[-1] - sizes[-1]), value=dump)
        return Geometry(kmaps, poolings, keys, self.batch_size, tuple(capacity))
