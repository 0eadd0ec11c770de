"""Where a JishNet training step spends its GPU time, kernel by kernel (torch.profiler).

One process, one GPU, random inputs of the real shape (minibatch 7 at 3600 × 3600 by default),
the training core's step without data or allreduce: autocast forward, the paper's loss, backward,
AdamW. For each ``--variant`` it prints the steady step (median of ``--steps`` after warm-up) and
the kernels that take most of it, grouped by name, with their share.

Usage: python bench/jishnet_kernels.py [--resolution 3600] [--batch 7] [--steps 20]
       [--variant bf16] [--variant fp32] [--variant "bf16 compile"] [--variant "bf16 fused"]

A variant's words: fp32 or bf16 (autocast), compile (torch.compile, default mode), fused (the
first block as one Triton kernel, ``hpcscale.workloads.jishnet.fused``; its forward by Toeplitz
products of input rows, or with ``patches`` the earlier 5 × 5 patch gather), channels_last.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict


def run(variant: str, resolution: int, batch: int, steps: int, top: int) -> list[float]:
    """Profile one variant; returns its loss at each step (the same inputs for every variant)."""
    import torch

    from hpcscale.workloads.jishnet.model import JishNet

    words = set(variant.split())
    torch.manual_seed(0)
    torch.backends.cudnn.benchmark = True
    kw = {"fused_first_block": True} if "fused" in words else {}
    if "fused" in words:
        from hpcscale.workloads.jishnet import fused

        fused.FORWARD = "patches" if "patches" in words else "rows"
    model = JishNet(resolution, **kw).cuda()
    if "compile" in words:
        model.before_compile()
    net = torch.compile(model) if "compile" in words else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.rand(batch, 1, resolution, resolution, device="cuda")
    if "channels_last" in words:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 5, (batch,), device="cuda")
    dtype = torch.bfloat16 if "bf16" in words else torch.float32

    losses = []

    def step() -> None:
        opt.zero_grad(set_to_none=False)
        with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
            out = net(x)
        loss = torch.nn.functional.nll_loss(torch.log(out.float() + 1e-9), y)
        loss.backward()
        opt.step()
        losses.append(loss.detach())

    torch.cuda.synchronize()
    t = time.perf_counter()
    step()
    torch.cuda.synchronize()
    first = time.perf_counter() - t
    for _ in range(3):
        step()
    times = []
    for _ in range(steps):
        torch.cuda.synchronize()
        t = time.perf_counter()
        step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    med = statistics.median(times)
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(5):
            step()
        torch.cuda.synchronize()
    per: dict[str, float] = defaultdict(float)
    for ev in prof.events():
        if ev.device_type.name == "CUDA":
            per[ev.name[:90]] += ev.device_time_total / 5 / 1000  # ms per step
    total = sum(per.values())
    print(
        f"\n== {variant}: steady {med * 1000:.1f} ms/step = {batch / med:.1f} images/s; first "
        f"step {first:.2f} s; kernels {total:.1f} ms/step; peak "
        f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB"
    )
    for name, ms in sorted(per.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {ms:7.2f} ms {100 * ms / total:5.1f} %  {name}")
    return [float(v) for v in losses]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--resolution", type=int, default=3600)
    ap.add_argument("--batch", type=int, default=7)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--variant", action="append", default=None)
    args = ap.parse_args()
    args.variant = args.variant or ["bf16"]
    import torch

    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}")
    curves = {v: run(v, args.resolution, args.batch, args.steps, args.top) for v in args.variant}
    first, base = next(iter(curves.items()))
    n = min(20, len(base))
    print(f"\nloss over the first {n} steps (same weights and inputs), against {first!r}:")
    for variant, curve in curves.items():
        worst = max(abs(a - b) / abs(b) for a, b in zip(curve[:n], base[:n], strict=True))
        print(
            f"  {variant:28s} step 1 {curve[0]:.5f}, step {n} {curve[n - 1]:.5f}, "
            f"largest relative difference {worst:.2e}"
        )


if __name__ == "__main__":
    main()
