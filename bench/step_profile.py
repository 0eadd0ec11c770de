"""Where any workload's training step goes, host and device (torch.profiler), one process.

The workload is driven through its interface as the loop drives it (stage, build, then
``batches`` → ``step`` → ``update``, no allreduce: one rank), on a data set made as
bench/workloads.py makes it. After ``--warmup`` steps it times ``--steps`` steps (wall, with a
device synchronisation after each), then profiles 10 more and prints per step: wall time, the
device's kernel time (busy share), and the host ops and kernels that take most.

Usage: python bench/step_profile.py --data /tmp/.../jets-4000 --run "cms-jets --batch 512"
       [--run "3dgan"] [--steps 30] [--top 12]
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import time
from collections import defaultdict
from pathlib import Path


def profile_run(data: Path, run: str, steps: int, warmup: int, top: int) -> None:
    import torch
    from torch.profiler import ProfilerActivity, profile

    from hpcscale import workloads
    from hpcscale.train.config import parse
    from hpcscale.train.engine import make_engine
    from hpcscale.train.jobenv import detect
    from hpcscale.train.loop import epoch_order
    from hpcscale.train.workload import RankContext

    args = shlex.split(run)
    core, wconfig = parse(["--data", str(data), "--out", "/tmp/step-profile", "--model", *args])
    spec = workloads.get(core.model)
    engine = make_engine(core.engine, detect({}), 60, core.device)
    ctx = RankContext(0, 1, engine.device, engine, data, core.batch or spec.default_batch, 0, None)
    wl = spec(wconfig, ctx)
    staged = wl.stage()
    spe = staged.local_samples // ctx.batch
    wl.build(spe)
    n = warmup + steps + 10
    local = staged.local_samples
    order = [o for e in range(n // spe + 1) for o in epoch_order(local, ctx.batch, spe, 0, e, 0)]
    batches = wl.batches(order[:n])
    sync = torch.cuda.synchronize if engine.device.type == "cuda" else (lambda: None)

    def one() -> None:
        batch = next(batches)
        out = wl.step(batch)
        float(out.loss)
        wl.update()
        sync()

    for _ in range(warmup):
        one()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        one()
        times.append(time.perf_counter() - t)
    med = statistics.median(times)
    acts = [ProfilerActivity.CPU] + (
        [ProfilerActivity.CUDA] if engine.device.type == "cuda" else []
    )
    with profile(activities=acts) as prof:
        for _ in range(10):
            one()
    kernels: dict[str, float] = defaultdict(float)
    host: dict[str, float] = defaultdict(float)
    for ev in prof.key_averages():
        host[ev.key[:70]] += ev.self_cpu_time_total / 10 / 1000
    for ev in prof.events():
        if ev.device_type.name == "CUDA":
            kernels[ev.name[:70]] += ev.device_time_total / 10 / 1000
    busy = sum(kernels.values())
    print(
        f"\n== {run}: {med * 1e3:.2f} ms/step ({ctx.batch / med:.0f} {spec.sample_unit}/s), "
        f"device kernels {busy:.2f} ms/step ({100 * busy / (med * 1e3):.0f} % busy)"
    )
    print("  host ops (self CPU ms/step):")
    for name, ms in sorted(host.items(), key=lambda kv: -kv[1])[:top]:
        print(f"    {ms:7.3f}  {name}")
    if kernels:
        print("  kernels (ms/step):")
        for name, ms in sorted(kernels.items(), key=lambda kv: -kv[1])[:top]:
            print(f"    {ms:7.3f}  {name}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--run", action="append", required=True)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=8)
    ap.add_argument("--top", type=int, default=12)
    args = ap.parse_args()
    for run in args.run:
        profile_run(args.data, run, args.steps, args.warmup, args.top)


if __name__ == "__main__":
    main()
