"""The portable sparse ops and SCNet against dense PyTorch references (CPU, float64)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from hpcscale.errors import UserError  # noqa: E402
from hpcscale.workloads.scnet.model import SCNet, feature_side  # noqa: E402
from hpcscale.workloads.scnet.sparse import (  # noqa: E402
    SparseMaxPool2d,
    SparseTensor,
    SubmanifoldConv2d,
    elu,
    kernel_map,
    submanifold_conv,
    to_dense,
)

pytestmark = pytest.mark.torch
B, H, W = 3, 13, 17


def random_sparse(
    seed: int, channels: int = 3, density: float = 0.2, shape: tuple[int, int] = (H, W)
) -> tuple[SparseTensor, torch.Tensor]:
    """A float64 sparse tensor in shuffled site order, and its dense (B, H, W) activity mask."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(B, *shape, generator=g) < density
    coords = mask.nonzero()
    coords = coords[torch.randperm(coords.shape[0], generator=g)]
    features = torch.randn(coords.shape[0], channels, generator=g, dtype=torch.float64)
    return SparseTensor(coords, features, shape, B), mask


def dense_weight(weight: torch.Tensor, k: int) -> torch.Tensor:
    """(K, Cin, Cout) sparse weight as an F.conv2d (Cout, Cin, k, k) weight."""
    return weight.view(k, k, weight.shape[1], weight.shape[2]).permute(3, 2, 0, 1)


def at_sites(dense: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """(N, C) values of a (B, C, H', W') tensor at the sites."""
    return dense[coords[:, 0], :, coords[:, 1], coords[:, 2]]


@pytest.mark.parametrize("k", [4, 5])
def test_kernel_map_matches_brute_force(k: int) -> None:
    x, _ = random_sparse(0, density=0.3)
    kmap = kernel_map(x.coords, x.shape, k)
    rows = {tuple(c): i for i, c in enumerate(x.coords.tolist())}
    n = x.coords.shape[0]
    taps = range(-(k // 2), k - k // 2)
    expected = [
        [rows.get((b, y + dy, xx + dx), n) for dy in taps for dx in taps]
        for b, y, xx in x.coords.tolist()
    ]
    assert kmap.nbr.tolist() == expected
    assert kmap.nbr.shape == (n, k * k) and kmap.n == n


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("density", [0.1, 0.3])
def test_conv_equals_dense_at_active_sites(k: int, density: float) -> None:
    x, _ = random_sparse(k, channels=3, density=density)
    conv = SubmanifoldConv2d(3, 4, k).double()
    out = conv(x)
    dense = F.conv2d(to_dense(x), dense_weight(conv.weight, k), padding=k // 2)
    assert out.coords is x.coords and out.shape == x.shape
    torch.testing.assert_close(out.features, at_sites(dense, x.coords), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("k", [3, 4, 5])  # deterministic: odd mirrored gather, even scatter-add
@pytest.mark.parametrize(("cin", "cout"), [(2, 3), (3, 2)])
@pytest.mark.parametrize("deterministic", [False, True])
def test_conv_gradients_equal_dense(k: int, cin: int, cout: int, deterministic: bool) -> None:
    x, _ = random_sparse(10 + k, channels=cin, density=0.25)
    feats = x.features.clone().requires_grad_()
    conv = SubmanifoldConv2d(cin, cout, k, deterministic=deterministic).double()
    upstream = torch.randn(feats.shape[0], cout, dtype=torch.float64)
    (conv(x.with_features(feats)).features * upstream).sum().backward()

    feats_d = x.features.clone().requires_grad_()
    weight_d = conv.weight.detach().clone().requires_grad_()
    dense = F.conv2d(to_dense(x.with_features(feats_d)), dense_weight(weight_d, k), padding=k // 2)
    (at_sites(dense, x.coords) * upstream).sum().backward()
    torch.testing.assert_close(feats.grad, feats_d.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(conv.weight.grad, weight_d.grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("k", [3, 4])
def test_conv_gradcheck(k: int) -> None:
    x, _ = random_sparse(20 + k, channels=2, density=0.3, shape=(5, 5))
    conv = SubmanifoldConv2d(2, 1, k).double()
    kmap = kernel_map(x.coords, x.shape, k)
    feats = x.features.clone().requires_grad_()
    weight = conv.weight.detach().clone().requires_grad_()
    for deterministic in (False, True):
        assert torch.autograd.gradcheck(
            lambda f, w, d=deterministic: submanifold_conv(f, w, kmap, d), (feats, weight)
        )


def test_conv_reuses_and_checks_kernel_map() -> None:
    x, _ = random_sparse(30)
    conv = SubmanifoldConv2d(3, 3, 5).double()
    kmap = kernel_map(x.coords, x.shape, 5)
    torch.testing.assert_close(conv(x, kmap).features, conv(x).features, rtol=0, atol=0)
    with pytest.raises(ValueError, match="kernel map"):
        conv(x, kernel_map(x.coords, x.shape, 3))


def dense_pool_reference(x: SparseTensor, mask: torch.Tensor, k: int):
    """Dense max-pool with −inf at inactive cells: (values (B, C, H', W'), active (B, H', W'))."""
    dense = to_dense(x).masked_fill(~mask.unsqueeze(1), float("-inf"))
    pooled = F.max_pool2d(dense, k)
    active = F.max_pool2d(mask.unsqueeze(1).double(), k).squeeze(1) > 0
    return pooled, active


@pytest.mark.parametrize("k", [2, 3, 4, 5])
@pytest.mark.parametrize("shape", [(H, W), (20, 20)])
def test_pool_equals_dense_masked_max_pool(k: int, shape: tuple[int, int]) -> None:
    x, mask = random_sparse(40 + k, channels=3, density=0.15, shape=shape)
    out = SparseMaxPool2d(k)(x)
    pooled, active = dense_pool_reference(x, mask, k)
    assert out.shape == (shape[0] // k, shape[1] // k) == tuple(active.shape[1:])
    assert sorted(map(tuple, out.coords.tolist())) == sorted(map(tuple, active.nonzero().tolist()))
    assert out.coords.tolist() == sorted(out.coords.tolist())  # sorted by (b, y, x)
    torch.testing.assert_close(out.features, at_sites(pooled, out.coords), rtol=0, atol=0)


def test_pool_gradient_equals_dense() -> None:
    k = 3
    x, mask = random_sparse(50, channels=2, density=0.3)
    feats = x.features.clone().requires_grad_()
    out = SparseMaxPool2d(k)(x.with_features(feats))
    upstream = torch.randn_like(out.features)
    (out.features * upstream).sum().backward()

    feats_d = x.features.clone().requires_grad_()
    pooled, _ = dense_pool_reference(x.with_features(feats_d), mask, k)
    (at_sites(pooled, out.coords) * upstream).sum().backward()
    torch.testing.assert_close(feats.grad, feats_d.grad, rtol=0, atol=0)


def test_to_dense_and_elu() -> None:
    x, mask = random_sparse(60, channels=2)
    dense = to_dense(x)
    assert dense.shape == (B, 2, H, W)
    expected = torch.zeros(B, 2, H, W, dtype=torch.float64)
    for (b, y, xx), f in zip(x.coords.tolist(), x.features, strict=True):
        expected[b, :, y, xx] = f
    torch.testing.assert_close(dense, expected, rtol=0, atol=0)
    assert ((dense != 0).any(1) == mask).all()
    torch.testing.assert_close(to_dense(elu(x)), F.elu(dense), rtol=0, atol=0)


def test_empty_input() -> None:
    x = SparseTensor(
        torch.empty(0, 3, dtype=torch.long), torch.empty(0, 2, dtype=torch.float64), (H, W), B
    )
    out = SparseMaxPool2d(2)(SubmanifoldConv2d(2, 3, 5).double()(x))
    assert out.features.shape == (0, 3) and to_dense(out).abs().sum() == 0


@pytest.mark.parametrize("deterministic", [False, True])
def test_bf16_autocast_runs_forward_and_backward(deterministic: bool) -> None:
    x, _ = random_sparse(70, channels=3)
    x = x.with_features(x.features.float())
    conv = SubmanifoldConv2d(3, 4, 5, deterministic=deterministic)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = conv(x)
    assert out.features.dtype == torch.bfloat16
    out.features.float().sum().backward()
    assert conv.weight.grad is not None and conv.weight.grad.dtype == torch.float32
    torch.testing.assert_close(out.features.float(), conv(x).features, rtol=0.05, atol=0.05)


# ---- SCNet ----------------------------------------------------------------------------------


def track_events(seed: int, batch: int, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Line-like events: a few random straight segments per event, unique sites, charges > 0."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for b in range(batch):
        for _ in range(3):
            start = torch.rand(2, generator=g) * resolution
            angle = torch.rand(1, generator=g) * 6.2832
            t = torch.arange(0, resolution // 4, dtype=torch.float64)
            y = (start[0] + t * torch.sin(angle)).long().clamp(0, resolution - 1)
            x = (start[1] + t * torch.cos(angle)).long().clamp(0, resolution - 1)
            rows.append(torch.stack((torch.full_like(y, b), y, x), 1))
    coords = torch.unique(torch.cat(rows), dim=0)
    charge = torch.rand(coords.shape[0], 1, generator=g, dtype=torch.float64) + 0.5
    return coords, charge


def dense_scnet(model: SCNet, coords: torch.Tensor, charge: torch.Tensor, batch: int):
    """The same layers, densely: conv (padding 2), mask to the active sites, ELU, −inf max-pool."""
    r = model.resolution
    x = to_dense(SparseTensor(coords, charge, (r, r), batch))
    mask = torch.zeros(batch, 1, r, r, dtype=torch.bool)
    mask[coords[:, 0], 0, coords[:, 1], coords[:, 2]] = True
    for conv, pool in zip(model.convs, model.pools, strict=True):
        x = F.elu(F.conv2d(x, dense_weight(conv.weight, 5), padding=2)) * mask
        x = F.max_pool2d(x.masked_fill(~mask, float("-inf")), pool.kernel_size)
        mask = F.max_pool2d(mask.double(), pool.kernel_size) > 0
        x = x.masked_fill(~mask, 0.0)
    h = F.elu(model.fc1(torch.flatten(x, 1)))
    return F.softmax(model.fc2(h), dim=1)


def test_scnet_outputs_probabilities_and_equals_dense_layers() -> None:
    torch.manual_seed(0)
    model = SCNet.from_preset("scnet-small", resolution=400).double()
    coords, charge = track_events(1, 3, 400)
    perm = torch.randperm(coords.shape[0])
    out = model(coords[perm], charge[perm], 3)
    assert out.shape == (3, 5)
    torch.testing.assert_close(out.sum(1), torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(out, dense_scnet(model, coords, charge, 3), rtol=1e-10, atol=1e-12)


def test_scnet_training_reduces_loss() -> None:
    torch.manual_seed(0)
    model = SCNet.from_preset("scnet-small", resolution=400, softmax=False)
    coords, charge = track_events(2, 4, 400)
    target = torch.tensor([0, 1, 2, 3])
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(coords, charge.float(), 4), target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


def test_feature_side_and_presets() -> None:
    assert feature_side(3600) == 9 and feature_side(400) == 1 and feature_side(1000) == 2
    assert SCNet().fc1.in_features == 256 * 9 * 9
    with pytest.raises(UserError, match="at least 400"):
        feature_side(399)
    with pytest.raises(UserError, match="unknown"):
        SCNet.from_preset("nope")


def test_kernel_map_presorted_equals_sorting_path() -> None:
    x, _ = random_sparse(80, density=0.3)
    order = torch.argsort((x.coords[:, 0] * H + x.coords[:, 1]) * W + x.coords[:, 2])
    coords = x.coords[order]
    for k in (3, 4, 5):
        torch.testing.assert_close(
            kernel_map(coords, x.shape, k, presorted=True).nbr, kernel_map(coords, x.shape, k).nbr
        )
    pooled = SparseMaxPool2d(2)(x)
    assert pooled.ordered and not x.ordered


def test_scnet_deterministic_backward_gives_the_same_gradients() -> None:
    coords, charge = track_events(3, 2, 400)
    grads = []
    for deterministic in (False, True):
        torch.manual_seed(0)
        model = SCNet.from_preset("scnet-small", 400, deterministic=deterministic).double()
        model(coords, charge, 2)[:, 0].sum().backward()
        grads.append([p.grad for p in model.parameters()])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("resolution", [400, 450])  # 450: the third pool drops sites
def test_a_padded_geometry_gives_the_same_outputs_and_gradients(resolution: int) -> None:
    """``Geometry.padded`` (what SCNet's CUDA graph replays on): the extra sites compute
    nothing that reaches the real ones, forward or backward."""
    torch.manual_seed(0)
    model = SCNet.from_preset("scnet-small", resolution=resolution).double()
    coords, charge = track_events(3, 3, resolution)
    geometry = model.geometry(coords, 3)
    sizes = geometry.sizes()
    padded = geometry.padded([n + 37 + 5 * i for i, n in enumerate(sizes)])
    assert padded.sizes() == padded.capacity and padded.sizes() != sizes
    results = []
    for g in (geometry, padded):
        model.zero_grad()
        out = model(coords, charge, 3, g)
        (out * torch.arange(15.0, dtype=out.dtype).view(3, 5)).sum().backward()
        results.append((out.detach(), [p.grad.clone() for p in model.parameters()]))
    (out, grads), (out_p, grads_p) = results
    torch.testing.assert_close(out_p, out, rtol=0, atol=0)
    for g, gp in zip(grads, grads_p, strict=True):
        torch.testing.assert_close(gp, g, rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="below the sites"):
        geometry.padded([n - 1 for n in sizes])


def test_capacity_only_grows_with_headroom() -> None:
    from hpcscale.workloads.graphs import Capacity

    cap = Capacity(headroom=1.2, align=8)
    first = cap.fit((100, 10))
    assert first == (120, 16) and cap.grown == 1
    assert cap.fit((110, 3)) == first and cap.grown == 1  # fits: the same sizes, no capture
    assert cap.fit((90, 20)) == (120, 24) and cap.grown == 2  # one level grew; none shrinks
