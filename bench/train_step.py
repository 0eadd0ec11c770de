"""Images/s per GPU for JishNet at 3600×3600, minibatch 7: the textbook loop vs hpcscale's.

(a) textbook, as the paper did it: fp32, eager; each image of the minibatch decompressed
    synchronously in Python (blosc.decompress → numpy → torch), stacked, copied to the device,
    then forward, backward, allreduce-free optimizer step.
(b) hpcscale's loop: the same events through the JishNet workload and ``hpcscale.train.loop.Loop``:
    Blosc ``decompress_ptr`` straight into pinned buffers by a prefetch thread, non_blocking
    copies, one flat gradient buffer; run in fp32 and with --bf16 + --channels-last.

Both run in one process on the same events (generated once into --out), after a warm-up;
medians over the timed steps.
Usage: python bench/train_step.py [--steps 30] [--warmup 5] [--resolution 3600] [--events 28]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import blosc
import numpy as np
import torch

from hpcscale.data.generate import generate
from hpcscale.train.config import CoreConfig
from hpcscale.train.engine import make_engine
from hpcscale.train.jobenv import detect
from hpcscale.train.loop import Loop, epoch_order
from hpcscale.train.records import RecordWriter
from hpcscale.train.workload import RankContext
from hpcscale.workloads.jishnet import JishNetConfig, JishNetWorkload
from hpcscale.workloads.jishnet.model import JishNet
from hpcscale.workloads.lartpc import loss_fn


def workload(events: Path, batch: int, **opts: bool) -> JishNetWorkload:
    engine = make_engine("torch", detect({}), 60, "auto")
    ctx = RankContext(0, 1, engine.device, engine, events, batch, seed=0, max_events=None)
    wl = JishNetWorkload(JishNetConfig(model="jishnet", **opts), ctx)
    wl.stage()
    return wl


def textbook(wl: JishNetWorkload, device: torch.device, batch: int, steps: int) -> list[float]:
    store = wl.store
    model = JishNet(store.resolution).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=0.01)
    labels = store.labels
    r = store.resolution
    times = []
    for step in range(steps):
        idx = [(step * batch + k) % len(store) for k in range(batch)]
        t = time.perf_counter()
        images = [
            np.frombuffer(blosc.decompress(store.blobs[i]), dtype=np.float32).reshape(1, r, r)
            for i in idx
        ]
        x = torch.from_numpy(np.stack(images)).to(device)
        y = torch.as_tensor(labels[idx]).to(device)
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        loss.item()
        times.append(time.perf_counter() - t)
    return times


def hpcscale_loop(events: Path, batch: int, steps: int, out: Path, **opts: bool) -> list[float]:
    wl = workload(events, batch, **opts)
    n = len(wl.store)
    core = CoreConfig(data=events, out=out, batch=batch, epochs=1e9, stop_at_target=False)
    tag = "-".join(k for k, v in opts.items() if v) or "fp32"
    rec = RecordWriter(out / f"bench-{tag}.jsonl", time.time(), rank=0)
    loop = Loop.build(core, wl, rec, steps_per_epoch=n // batch)
    order = [
        o for e in range(steps // max(n // batch, 1) + 1)
        for o in epoch_order(n, batch, n // batch, 0, e, 0)
    ][:steps]  # fmt: skip
    times, last = [], time.perf_counter()
    for b in wl.batches(order):
        loop.train_step(b, 0.0)
        now = time.perf_counter()
        times.append(now - last)
        last = now
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--resolution", type=int, default=3600)
    ap.add_argument("--events", type=int, default=28)
    ap.add_argument("--batch", type=int, default=7)
    ap.add_argument("--out", type=Path, default=Path("/tmp/hpcscale-bench"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    torch.backends.cudnn.benchmark = True
    events = args.out / f"events-{args.resolution}px-{args.events}"
    if not (events / "manifest.json").exists():
        generate(events, args.events, resolution=args.resolution, seed=11, val_fraction=0.0)
    n = args.steps + args.warmup
    base_wl = workload(events, args.batch)
    rows = {"textbook (fp32, sync decompress)": textbook(base_wl, device, args.batch, n)}
    rows["hpcscale (fp32)"] = hpcscale_loop(events, args.batch, n, args.out)
    rows["hpcscale (bf16 + channels_last)"] = hpcscale_loop(
        events, args.batch, n, args.out, bf16=True, channels_last=True
    )
    print(
        f"JishNet {args.resolution}×{args.resolution}, minibatch {args.batch}, {name}, "
        f"torch {torch.__version__}; median of {args.steps} steps after {args.warmup} warm-up"
    )
    base = None
    for label, times in rows.items():
        med = statistics.median(times[args.warmup :])
        ips = args.batch / med
        base = base or ips
        print(f"  {label:36s} {med * 1e3:8.1f} ms/step {ips:8.1f} images/s  ×{ips / base:.2f}")


if __name__ == "__main__":
    main()
