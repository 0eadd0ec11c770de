"""Portable sparse 2-D convolution ops in plain PyTorch (CPU and CUDA), SparseConvNet semantics.

The paper's SCNet uses Facebook's SparseConvNet, whose CUDA extension is hard to build on today's
toolchains. These ops reproduce its semantics with stock tensor ops, designed to be neither
launch- nor sync-bound on a GPU:

- A sparse tensor is a list of active sites ``coords`` (batch, row, column) with their
  ``features``; every site is stored once.
- :func:`kernel_map` builds the neighbour table of all K = k² kernel offsets in one go: sites
  become linear keys ``b·H·W + y·W + x``, sorted once, and a single ``searchsorted`` answers all
  N·K neighbour queries (keys live in an image padded by k//2, so out-of-image neighbours need no
  mask). Missing neighbours (inactive, or outside the image) point at a sentinel row N. No host
  synchronisation: the table's shape (N, K) is known on the host.
- :class:`SubmanifoldConv2d` computes outputs only at the input's active sites, as an implicit
  GEMM: gather the neighbours' features into (N, K·Cin) (the sentinel row is zero) and multiply
  once by the (K·Cin, Cout) weight. Autograd does the backward; an optional hand-written one
  gathers over the mirrored offsets instead of scattering with atomics (deterministic).
- :class:`SparseMaxPool2d` divides coordinates, finds the output sites with ``torch.unique``
  (the one host synchronisation per resolution level: the number of output sites decides tensor
  shapes) and reduces with ``scatter_reduce(amax)`` over the active inputs only.

Layout conventions follow SparseConvNet: weights are (K, Cin, Cout) with offset index
``j = ky·k + kx``; offset (ky, kx) reads the input at (y + ky − k//2, x + kx − k//2), which is
what a dense ``F.conv2d`` with padding k//2 computes (for even k too, where that convolution's
output is one larger than its input and the sparse one reads the active sites' part of it).

At SCNet's sizes (7 events, 63,000 sites at 3600², a few thousand after two poolings) every
tensor here is small and a training step is bound by the per-op overhead on the host, not by
the GPU: the ops are written to launch few kernels (bench/sparse_conv.py measures it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "KernelMap",
    "Pooling",
    "SparseMaxPool2d",
    "SparseTensor",
    "SubmanifoldConv2d",
    "elu",
    "kernel_map",
    "linear_keys",
    "pool_features",
    "pool_sites",
    "sparse_max_pool",
    "submanifold_conv",
    "to_dense",
]


@dataclass
class SparseTensor:
    """Active sites of a batch of 2-D images at one resolution level.

    ``coords`` is (N, 3) int64: batch index in [0, batch_size), row (y) in [0, H), column (x)
    in [0, W); rows are unique. The ops check neither (a check would cost a host sync): a
    duplicated site would be counted twice by a convolution, an out-of-range one could alias
    another site's key. ``features`` is (N, C).
    ``ordered`` says the rows are in (b, y, x) order (pooling outputs are), which lets
    :func:`kernel_map` skip its sort; it is a promise, not checked.
    """

    coords: torch.Tensor
    features: torch.Tensor
    shape: tuple[int, int]
    batch_size: int
    ordered: bool = False

    def with_features(self, features: torch.Tensor) -> SparseTensor:
        """The same sites with new features (for feature-wise ops such as activations)."""
        return replace(self, features=features)


@dataclass
class KernelMap:
    """Neighbour table of a set of sites for one kernel size.

    ``nbr[i, j]`` is the row of site i's neighbour at offset j, or ``n`` (a sentinel: the row of
    zeros appended to the features) when that neighbour is inactive or outside the image. It
    depends only on the sites, the spatial shape and k, so every layer at one resolution level
    with the same kernel size can share it.
    """

    nbr: torch.Tensor  # (N, K) int64
    kernel_size: int
    shape: tuple[int, int]

    @property
    def n(self) -> int:
        return self.nbr.shape[0]

    @property
    def volume(self) -> int:
        return self.kernel_size * self.kernel_size


_CONSTS: dict[tuple[tuple[int, ...], str], torch.Tensor] = {}


def _const(values: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """A small int64 tensor on ``device``, cached: index arithmetic with a (3,) or (K,) vector
    is one op instead of one per component, and the copy to the device happens once."""
    key = (values, str(device))
    if key not in _CONSTS:
        _CONSTS[key] = torch.tensor(values, dtype=torch.long, device=device)
    return _CONSTS[key]


def linear_keys(coords: torch.Tensor, shape: tuple[int, int], pad: int = 0) -> torch.Tensor:
    """Sites as int64 keys ``b·H'·W' + (y + pad)·W' + (x + pad)`` with H' = H + 2·pad and
    W' = W + 2·pad: sortable, and in the same order as (b, y, x)."""
    hp, wp = shape[0] + 2 * pad, shape[1] + 2 * pad
    keys = (coords * _const((hp * wp, wp, 1), coords.device)).sum(1)
    return keys + (pad * wp + pad) if pad else keys


def _key_deltas(kernel_size: int, padded_width: int, device: torch.device) -> torch.Tensor:
    """(K,) padded-key differences of the kernel taps, in weight order j = ky·k + kx."""
    taps = range(-(kernel_size // 2), kernel_size - kernel_size // 2)
    return _const(tuple(dy * padded_width + dx for dy in taps for dx in taps), device)


def kernel_map(
    coords: torch.Tensor, shape: tuple[int, int], kernel_size: int, presorted: bool = False
) -> KernelMap:
    """Build the (N, K) neighbour table for all K offsets at once, without host syncs.

    Sites are keyed in an image padded by k//2 on every side, ``(b·H' + y + r)·W' + x + r``, so a
    neighbour is just ``key + delta[j]`` for a fixed (K,) vector, and a neighbour outside the
    image lands in the empty margin: it can never alias a site of another row or batch element,
    and no bounds mask is needed. One sort of the N keys (skipped when ``presorted``: the sites
    are in (b, y, x) order, as SparseMaxPool2d's outputs are) and one ``searchsorted`` of the
    N·K queries replace a loop over offsets that was launch- and sync-bound; about ten tensor
    ops in all, since on a GPU these tables are small and the per-op overhead dominates.
    """
    n = coords.shape[0]
    k2 = kernel_size * kernel_size
    if n == 0:
        empty = torch.empty(0, k2, dtype=torch.long, device=coords.device)
        return KernelMap(empty, kernel_size, shape)
    r = kernel_size // 2
    w = shape[1]
    keys = linear_keys(coords, shape, pad=r)
    sorted_keys, perm = (keys, None) if presorted else torch.sort(keys)
    query = keys[:, None] + _key_deltas(kernel_size, w + 2 * r, coords.device)
    pos = torch.searchsorted(sorted_keys, query).clamp_(max=n - 1)
    found = sorted_keys[pos] == query
    if perm is not None:
        pos = perm[pos]  # rows of the sorted sites → rows of the caller's sites
    return KernelMap(torch.where(found, pos, n), kernel_size, shape)


def _gather(features: torch.Tensor, nbr: torch.Tensor) -> torch.Tensor:
    """(N, K·C): each site's K neighbours' features side by side, zeros for the sentinel."""
    padded = F.pad(features, (0, 0, 0, 1))  # row N: zeros
    width = nbr.shape[1] * features.shape[1]
    return padded.index_select(0, nbr.reshape(-1)).view(nbr.shape[0], width)


class _SubmanifoldConvFn(torch.autograd.Function):
    """Implicit-GEMM submanifold convolution with a gather-only backward for odd kernels."""

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        features: torch.Tensor,
        weight: torch.Tensor,
        nbr: torch.Tensor,
    ) -> torch.Tensor:
        k2, cin, cout = weight.shape
        ctx.save_for_backward(features, weight, nbr)
        return _gather(features, nbr) @ weight.reshape(k2 * cin, cout)

    @staticmethod
    def backward(
        ctx: torch.autograd.function.FunctionCtx, grad_out: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        features, weight, nbr = ctx.saved_tensors
        k2, cin, cout = weight.shape
        grad_out = grad_out.contiguous()
        grad_features = grad_weight = None
        if ctx.needs_input_grad[1]:
            # Re-gather rather than keep the (N, K·Cin) matrix alive from the forward: as fast
            # (measured against keeping it), less memory.
            grad_weight = (_gather(features, nbr).t() @ grad_out).view(k2, cin, cout)
        if ctx.needs_input_grad[0]:
            if math.isqrt(k2) % 2 == 1:
                # Site q receives from p = q − offset_j, which is q's neighbour at the mirrored
                # offset K−1−j: a gather-GEMM with the flipped, transposed weight; no atomics.
                w_t = weight.flip(0).transpose(1, 2).reshape(k2 * cout, cin)
                grad_features = _gather(grad_out, nbr) @ w_t
            else:  # even k: the mirrored offsets are not in the table; scatter-add instead
                cols = (grad_out @ weight.reshape(k2 * cin, cout).t()).view(-1, cin)
                grad_features = cols.new_zeros(nbr.shape[0] + 1, cin)
                grad_features = grad_features.index_add_(0, nbr.reshape(-1), cols)[:-1]
        return grad_features, grad_weight, None


def submanifold_conv(
    features: torch.Tensor, weight: torch.Tensor, kmap: KernelMap, deterministic: bool = False
) -> torch.Tensor:
    """out[p] = Σ_j features[nbr[p, j]] @ weight[j] for a (K, Cin, Cout) ``weight``.

    Implicit GEMM: one gather of the neighbours' features into (N, K·Cin) (a zero row appended
    for the sentinel) and one matrix product with the weight as (K·Cin, Cout).

    Backward: by default autograd's (the feature gradient scatters with ``index_add``, atomics
    on CUDA). ``deterministic=True`` uses a hand-written backward whose feature gradient, for
    odd k, gathers the output gradients over the mirrored offsets: no atomics, so reproducible
    bit for bit, and less GPU kernel time (1.8 vs 2.1 ms per SCNet step on an H100; the
    ``index_add`` alone is 0.73 ms) and a little faster on CPU (56 vs 60 ms on 16 cores). But
    its Python backward issues more ops, and SCNet's GPU step is bound by per-op host overhead,
    so there it measured slower in wall time (8.8 vs 7.9 ms and 8.4 vs 7.0 ms in two
    interleaved runs of bench/sparse_conv.py), and its peak memory is higher (188 vs 151 MiB).
    Even k falls back to ``index_add`` in either mode. Under autocast the deterministic path
    casts its inputs here and runs with autocast off, so that its forward and backward see one
    dtype.
    """
    if not deterministic:
        k2, cin, cout = weight.shape
        return _gather(features, kmap.nbr) @ weight.reshape(k2 * cin, cout)
    device_type = features.device.type
    if torch.is_autocast_enabled(device_type):
        dtype = torch.get_autocast_dtype(device_type)
        with torch.autocast(device_type, enabled=False):
            return _SubmanifoldConvFn.apply(features.to(dtype), weight.to(dtype), kmap.nbr)
    return _SubmanifoldConvFn.apply(features, weight, kmap.nbr)


class SubmanifoldConv2d(nn.Module):
    """SparseConvNet's ``SubmanifoldConvolution(2, in, out, k, bias=False)``.

    Outputs exist exactly at the input's active sites, so sparsity does not dilate from layer
    to layer (the point of submanifold convolutions). Weights are (K, Cin, Cout), initialised as
    SparseConvNet does: normal with std sqrt(2 / (K·Cin)) (He init for the fan-in K·Cin).
    ``deterministic`` selects the gather-only backward (see :func:`submanifold_conv`).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        bias: bool = False,
        deterministic: bool = False,
    ) -> None:
        super().__init__()
        self.deterministic = deterministic
        if bias:
            raise ValueError("SubmanifoldConv2d has no bias (as SCNet's published layers)")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        volume = kernel_size * kernel_size
        self.weight = nn.Parameter(torch.empty(volume, in_channels, out_channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        std = math.sqrt(2.0 / (self.kernel_size**2 * self.in_channels))
        with torch.no_grad():
            self.weight.normal_(0.0, std)

    def forward(self, x: SparseTensor, kmap: KernelMap | None = None) -> SparseTensor:
        """Convolve; pass ``kmap`` to reuse a neighbour table built for the same sites."""
        if kmap is None:
            kmap = kernel_map(x.coords, x.shape, self.kernel_size, presorted=x.ordered)
        elif kmap.kernel_size != self.kernel_size or kmap.n != x.coords.shape[0]:
            raise ValueError("kernel map was built for other sites or another kernel size")
        return x.with_features(submanifold_conv(x.features, self.weight, kmap, self.deterministic))

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"


@dataclass
class Pooling:
    """Where a max pool of size = stride = k sends each active site: the output sites (sorted
    by (b, y, x)) and each input site's output row. It depends on the sites alone, so it can be
    made before the features exist (``SCNet.geometry``, off the training step)."""

    coords: torch.Tensor  # (M, 3) the output sites
    inverse: torch.Tensor  # (N,) each input site's output row; M for a site past the last window
    shape: tuple[int, int]  # the output's spatial shape


def pool_sites(coords: torch.Tensor, shape: tuple[int, int], kernel_size: int) -> Pooling:
    """The output sites of a max pool of size = stride = k, and where each input goes."""
    k = kernel_size
    h, w = shape
    ho, wo = h // k, w // k
    pooled = coords.div(_const((1, k, k), coords.device), rounding_mode="floor")
    keep = None
    if h % k or w % k:  # floor like F.max_pool2d: the sites past the last full window go nowhere
        keep = (coords[:, 1] < ho * k) & (coords[:, 2] < wo * k)
        pooled = pooled[keep]  # a host sync; none when k divides
    # Output sites, sorted; the host sync (their number decides the shapes from here on).
    keys, inverse = torch.unique(linear_keys(pooled, (ho, wo)), return_inverse=True)
    if keep is not None:  # the dropped sites point at row M, past the outputs
        inverse = torch.full_like(keep, keys.shape[0], dtype=torch.long).masked_scatter(
            keep, inverse
        )
    # keys → (b, y, x): divide by (H·W, W, 1), then reduce y and x modulo (H, W).
    out_coords = keys[:, None].div(_const((ho * wo, wo, 1), keys.device), rounding_mode="floor")
    out_coords = out_coords.remainder(_const((2**62, ho, wo), keys.device))
    return Pooling(out_coords, inverse, (ho, wo))


def pool_features(features: torch.Tensor, pooling: Pooling) -> torch.Tensor:
    """(M, C): each output site's maximum over its active inputs (``scatter_reduce(amax)``)."""
    m = pooling.coords.shape[0]
    out = features.new_zeros(m + 1, features.shape[1])  # row M: the dropped sites' (discarded)
    index = pooling.inverse.unsqueeze(1).expand_as(features)
    out = out.scatter_reduce(0, index, features, "amax", include_self=False)
    return out[:m]


def sparse_max_pool(x: SparseTensor, kernel_size: int) -> SparseTensor:
    """Max pooling with size = stride = k over the active sites only (see SparseMaxPool2d)."""
    pooling = pool_sites(x.coords, x.shape, kernel_size)
    out = pool_features(x.features, pooling)
    return SparseTensor(pooling.coords, out, pooling.shape, x.batch_size, ordered=True)


class SparseMaxPool2d(nn.Module):
    """SparseConvNet's ``MaxPooling(2, k, k)``.

    An output site is active when any input in its k×k window is; its value is the maximum over
    the active inputs only (a dense max pool with −inf at inactive cells, restricted to the
    active outputs). Output sites come out sorted by (batch, row, column). One host sync per call
    (``torch.unique``: the number of output sites is data-dependent), two if k does not divide
    the shape.
    """

    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        self.kernel_size = kernel_size

    def forward(self, x: SparseTensor) -> SparseTensor:
        return sparse_max_pool(x, self.kernel_size)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}"


def to_dense(x: SparseTensor) -> torch.Tensor:
    """(B, C, H, W) with the active sites' features and zeros elsewhere (differentiable)."""
    h, w = x.shape
    channels = x.features.shape[1]
    flat = x.features.new_zeros(x.batch_size * h * w, channels)
    flat = flat.index_put((linear_keys(x.coords, x.shape),), x.features)
    return flat.view(x.batch_size, h, w, channels).permute(0, 3, 1, 2).contiguous()


def elu(x: SparseTensor, alpha: float = 1.0) -> SparseTensor:
    """ELU on the active sites (ELU(0) = 0, so inactive sites would stay zero anyway)."""
    return x.with_features(F.elu(x.features, alpha))
