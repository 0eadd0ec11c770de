"""SCNet training-step time at 3600×3600, minibatch 7: hpcscale's sparse ops vs simpler versions.

Synthetic track-like events (long scattering tracks and short-branch showers, ~9,000 active
pixels each, 0.07 % of the image) are generated once and put on the device. Each variant runs
forward + cross-entropy + backward + SGD step (synchronised per step); the first step is
reported separately, then the median of ``--steps`` steps taken round-robin over the variants in
``--rounds`` rounds. Peak memory: over the first three steps. Variants:

- ``ours``: hpcscale.workloads.scnet (padded-key kernel map, implicit-GEMM conv with autograd's
  backward, unique + scatter_reduce pooling); also under bf16 autocast when on CUDA.
- ``ours-det``: ``deterministic=True``: the hand-written backward that gathers over the mirrored
  offsets (no atomics) and re-gathers for the weight gradient.
- ``naive``: a Python loop over the 25 offsets, searchsorted + nonzero + index_add per offset.
- ``jishnet``: the dense JishNet on the same events as (7, 1, 3600, 3600) images (CUDA only).

Usage, from the repository root:
    PYTHONPATH=. python bench/sparse_conv.py [--steps 20] [--device cuda|cpu] [--pixels 9000]
        [--no-dense] [--profile]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from hpcscale.train.models import JishNet

from hpcscale.workloads.scnet.model import SCNet
from hpcscale.workloads.scnet.sparse import (
    KernelMap,
    SparseTensor,
    elu,
    kernel_map,
    linear_keys,
    submanifold_conv,
    to_dense,
)

RES, BATCH = 3600, 7
ConvFn = Callable[[torch.Tensor, torch.Tensor, SparseTensor, KernelMap], torch.Tensor]


def _segment(
    rng: np.random.Generator, start: np.ndarray, angle: float, length: float, wiggle: float
):
    """Pixels of a slightly scattering line, sampled every half pixel."""
    n = max(int(length * 2), 2)
    angles = angle + np.cumsum(rng.normal(0.0, wiggle, n))
    steps = 0.5 * np.stack((np.sin(angles), np.cos(angles)), 1)
    return np.rint(start + np.cumsum(steps, 0)).astype(np.int64)


def synthetic_event(rng: np.random.Generator, pixels: int) -> np.ndarray:
    """(n, 2) unique (row, column) sites: tracks and showers until ``pixels`` sites are lit."""
    parts: list[np.ndarray] = []
    count = 0
    while count < pixels:
        start = rng.uniform(0.15, 0.85, 2) * RES
        axis = rng.uniform(0, 2 * np.pi)
        if rng.random() < 0.5:  # a track
            parts.append(_segment(rng, start, axis, rng.uniform(300, 2000), 0.003))
        else:  # a shower: a trunk and many short branches in a widening cone
            parts.append(_segment(rng, start, axis, 150, 0.01))
            for _ in range(rng.integers(20, 60)):
                d = rng.exponential(250)
                origin = start + d * np.array([np.sin(axis), np.cos(axis)])
                a = axis + rng.normal(0, 0.3)
                parts.append(_segment(rng, origin, a, rng.exponential(40) + 3, 0.05))
        sites = np.concatenate(parts)
        sites = sites[((sites >= 0) & (sites < RES)).all(1)]
        count = len(np.unique(sites[:, 0] * RES + sites[:, 1]))
    keys = np.unique(sites[:, 0] * RES + sites[:, 1])[:pixels]
    return np.stack((keys // RES, keys % RES), 1)


def minibatch(seed: int, pixels: int, device: torch.device):
    rng = np.random.default_rng(seed)
    rows = [
        np.concatenate((np.full((len(s), 1), b), s), 1)
        for b, s in enumerate(synthetic_event(rng, pixels) for _ in range(BATCH))
    ]
    coords = torch.from_numpy(np.concatenate(rows)).to(device)
    charge = torch.from_numpy(rng.gamma(4.0, 0.3, (len(coords), 1)).astype(np.float32))
    return coords, charge.to(device), torch.arange(BATCH, device=device) % 5


def naive_conv(features, weight, x: SparseTensor, _kmap) -> torch.Tensor:
    """The first version: per offset a searchsorted and a nonzero (a host sync each)."""
    h, w = x.shape
    keys = linear_keys(x.coords, x.shape)
    sorted_keys, perm = torch.sort(keys)
    k = int(weight.shape[0] ** 0.5)
    out = features.new_zeros(features.shape[0], weight.shape[2])
    for j in range(k * k):
        dy, dx = j // k - k // 2, j % k - k // 2
        ny, nx = x.coords[:, 1] + dy, x.coords[:, 2] + dx
        inside = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
        query = (x.coords[:, 0] * h + ny) * w + nx
        pos = torch.searchsorted(sorted_keys, query).clamp_(max=len(keys) - 1)
        rows = (inside & (sorted_keys[pos] == query)).nonzero().squeeze(1)
        out = out.index_add(0, rows, features[perm[pos[rows]]] @ weight[j])
    return out


def ours_conv(features, weight, _x, kmap: KernelMap) -> torch.Tensor:
    return submanifold_conv(features, weight, kmap)


def deterministic_conv(features, weight, _x, kmap: KernelMap) -> torch.Tensor:
    return submanifold_conv(features, weight, kmap, deterministic=True)


def scnet_forward(model: SCNet, conv: ConvFn, coords, charge, sizes: list[int] | None = None):
    """SCNet.forward with a pluggable convolution (the same layers and weights)."""
    x = SparseTensor(coords, charge, (RES, RES), BATCH)
    for layer, pool in zip(model.convs, model.pools, strict=True):
        if sizes is not None:
            sizes.append(x.coords.shape[0])
        kmap = kernel_map(x.coords, x.shape, layer.kernel_size, x.ordered)
        x = pool(elu(x.with_features(conv(x.features, layer.weight, x, kmap))))
    h = F.elu(model.fc1(torch.flatten(to_dense(x), 1)))
    return F.softmax(model.fc2(h), 1)


def timed_steps(step: Callable[[], None], steps: int, device: torch.device) -> list[float]:
    """Wall ms of each of ``steps`` calls, synchronised around each."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times = []
    for _ in range(steps):
        sync()
        t = time.perf_counter()
        step()
        sync()
        times.append((time.perf_counter() - t) * 1e3)
    return times


def train_step(model, forward, target) -> Callable[[], None]:
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(forward(), target).backward()
        opt.step()

    return step


@contextlib.contextmanager
def peak_memory(device: torch.device, out: list[float]) -> Iterator[None]:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    yield
    out.append(torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else float("nan"))


def report(name: str, first: float, median: float, mem: float) -> None:
    print(
        f"{name:<14} first {first:9.1f} ms   median {median:8.2f} ms/minibatch   "
        f"{BATCH * 1e3 / median:8.1f} images/s   peak {mem:8.1f} MiB",
        flush=True,
    )


def run(args: argparse.Namespace) -> None:
    device = torch.device(args.device)
    torch.manual_seed(0)
    coords, charge, target = minibatch(0, args.pixels, device)
    model = SCNet().to(device)
    sizes: list[int] = []
    scnet_forward(model, ours_conv, coords, charge, sizes)
    print(f"device {device} torch {torch.__version__}; active sites per level: {sizes}")
    print(f"  ({sizes[0] / BATCH:.0f} per event, {sizes[0] / BATCH / RES**2:.3%} of the image)")
    check(model, coords, charge, target)
    variants: list[tuple[str, ConvFn, bool]] = [("ours", ours_conv, False)]
    if device.type == "cuda":
        variants.append(("ours-bf16", ours_conv, True))
    variants += [("ours-det", deterministic_conv, False), ("naive", naive_conv, False)]
    steps, firsts, mems = {}, {}, {}
    for name, conv, bf16 in variants:
        autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)

        def forward(conv: ConvFn = conv, autocast=autocast) -> torch.Tensor:
            with autocast:
                return scnet_forward(model, conv, coords, charge).float()

        steps[name] = train_step(model, forward, target)
        mem: list[float] = []
        with peak_memory(device, mem):
            firsts[name] = timed_steps(steps[name], 3, device)[0]
        mems[name] = mem[0]
    # Round-robin, so that drift of the host (clocks, neighbours) hits every variant alike.
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            times[name] += timed_steps(step, max(args.steps // args.rounds, 1), device)
    for name in steps:
        report(name, firsts[name], statistics.median(times[name]), mems[name])
    if device.type == "cuda" and not args.no_dense:
        run_dense(coords, charge, target, device, args.steps)
    if args.profile:
        breakdown(model, coords, charge, device)
    if args.profile and device.type == "cuda":
        profile(model, coords, charge, target)


def check(model: SCNet, coords, charge, target) -> None:
    """Ours against the naive loop on this device: the loss and every parameter's gradient."""
    grads = []
    for conv in (ours_conv, naive_conv, deterministic_conv):
        model.zero_grad(set_to_none=True)
        loss = F.cross_entropy(scnet_forward(model, conv, coords, charge), target)
        loss.backward()
        grads.append([loss.detach()] + [p.grad.clone() for p in model.parameters()])
    for name, other in (("ours", grads[0]), ("ours-det", grads[2])):
        worst = max(
            ((a - b).abs().max() / b.abs().max().clamp(min=1e-30)).item()
            for a, b in zip(other, grads[1], strict=True)
        )
        print(f"check {name} vs naive: loss {other[0].item():.6f}, worst rel. diff {worst:.2e}")
    model.zero_grad(set_to_none=True)


def run_dense(coords, charge, target, device: torch.device, steps: int) -> None:
    torch.backends.cudnn.benchmark = True  # as hpcscale's training loop
    images = to_dense(SparseTensor(coords, charge, (RES, RES), BATCH))
    model = JishNet().to(device)
    mem: list[float] = []
    step = train_step(model, lambda: model(images), target)
    with peak_memory(device, mem):
        first = timed_steps(step, 1, device)[0]
    report("jishnet-dense", first, statistics.median(timed_steps(step, steps, device)), mem[0])


def breakdown(model: SCNet, coords, charge, device: torch.device) -> None:
    """Wall time per op family and level (forward only, synchronised): where the step goes."""
    x = SparseTensor(coords, charge, (RES, RES), BATCH)
    parts = []
    with torch.no_grad():
        for level, (layer, pool) in enumerate(zip(model.convs, model.pools, strict=True)):
            kmap = kernel_map(x.coords, x.shape, 5, x.ordered)
            conv_x = x.with_features(ours_conv(x.features, layer.weight, x, kmap))
            calls = {
                "kmap": lambda x=x: kernel_map(x.coords, x.shape, 5, x.ordered),
                "conv": lambda x=x, k=kmap, w=layer.weight: ours_conv(x.features, w, x, k),
                "pool": lambda c=conv_x, p=pool: p(c),
            }
            for name, call in calls.items():
                ms = statistics.median(timed_steps(call, 20, device))
                parts.append(f"L{level + 1} {name} {ms:.3f}")
            x = pool(elu(conv_x))
    print("forward ms per call: " + ", ".join(parts))
    with torch.no_grad():
        ms = statistics.median(
            timed_steps(lambda: scnet_forward(model, ours_conv, coords, charge), 20, device)
        )
    print(f"ours forward only (no grad): median {ms:.2f} ms/minibatch")


def profile(model: SCNet, coords, charge, target) -> None:
    """Top CUDA kernels of one step of ours, to see what a Triton kernel could save."""
    step = train_step(model, lambda: scnet_forward(model, ours_conv, coords, charge), target)
    step()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        step()
        torch.cuda.synchronize()
    print(
        prof.key_averages().table(
            sort_by="self_cuda_time_total", row_limit=12, max_name_column_width=60
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50, help="timed steps per variant")
    parser.add_argument("--rounds", type=int, default=5, help="round-robin rounds")
    parser.add_argument("--pixels", type=int, default=9000)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-dense", action="store_true")
    parser.add_argument("--profile", action="store_true")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
