"""JishNet against SCNet on the same events, through the real training core, one GPU.

For each model, ``python -m hpcscale.train`` trains a fixed number of steps (no early stop) on
the same simulated 3600 × 3600 events, then validates; the figures come from the job's own
records and summary:

- images/s per GPU, steady state: minibatch / median wall time between consecutive steps
  (steps 6 onwards), and the first step's time separately (cuDNN's search, kernel map warm-up);
- peak GPU memory (``torch.cuda.max_memory_allocated``), DLT, and the validation accuracy after
  the fixed number of steps (and the training accuracy over its last 50 steps, to tell
  over-fitting from slow learning).

Usage: python bench/workloads.py [--events 2000] [--resolution 3600] [--steps 600]
       [--run jishnet] [--run "jishnet --bf16 --channels-last"] [--run "scnet --lr 1e-3"]
       [--lr 1e-4]   (a run's own options override the common ones)
"""

from __future__ import annotations

import argparse
import itertools
import json
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

from hpcscale.data.files import read_manifest
from hpcscale.data.generate import generate
from hpcscale.train.records import read_records

WARMUP_STEPS = 5
TRAIN_ACC_STEPS = 50  # training accuracy: mean global accuracy of the last steps


def train(events: Path, out: Path, run: str, steps: int, batch: int, lr: float) -> dict:
    """One job of ``steps`` steps; returns its figures."""
    train_events = read_manifest(events).count("train")
    epochs = steps / (train_events // batch)
    args = shlex.split(run)
    cmd = [
        sys.executable,
        "-m",
        "hpcscale.train",
        "--data",
        str(events),
        "--out",
        str(out),
        "--model",
        args[0],
        "--batch",
        str(batch),
        "--epochs",
        repr(epochs),
        "--no-stop-at-target",
        "--lr",
        str(lr),
        "--seed",
        "0",
        *args[1:],
    ]  # fmt: skip  (the run's own options last: they win)
    start = time.time()
    subprocess.run(cmd, check=True)
    wall = time.time() - start
    summary = json.loads((out / "summary.json").read_text())
    rows = read_records(out / "rank-0.jsonl")
    staged = next(r["t"] for r in rows if r.get("phase") == "staged")
    sync_rows = [r for r in rows if r["kind"] == "sync"]
    syncs = [r["t"] for r in sync_rows]
    last = sync_rows[-TRAIN_ACC_STEPS:]
    gaps = [b - a for a, b in itertools.pairwise(syncs)][WARMUP_STEPS:]
    steady = statistics.median(gaps)
    return {
        "run": run,
        "steps": summary["steps"],
        "first_step_s": syncs[0] - staged,
        "steady_step_ms": 1e3 * steady,
        "images_per_s": batch / steady,
        "peak_gib": summary.get("peak_device_memory_gib"),
        "dlt_s": summary["dlt_s"],
        "val_accuracy": summary["val_accuracy"],
        "train_accuracy": sum(r["global_acc"] for r in last) / len(last),
        "final_smoothed_loss": summary["final_smoothed_loss"],
        "wall_s": wall,
        "device": summary["provenance"].get("gpu") or summary["provenance"]["device"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=2000)
    ap.add_argument("--resolution", type=int, default=3600)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch", type=int, default=7)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--run", action="append", help="model and its options (repeatable)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/hpcscale-bench-workloads"))
    args = ap.parse_args()
    runs = args.run or ["jishnet", "jishnet --bf16 --channels-last", "scnet"]
    events = args.out / f"events-{args.resolution}px-{args.events}"
    if not (events / "manifest.json").exists():
        generate(events, args.events, resolution=args.resolution, seed=0)
    results = []
    for i, run in enumerate(runs):
        out = args.out / f"job-{i}-{int(time.time())}"
        results.append(train(events, out, run, args.steps, args.batch, args.lr))
    print(
        f"\n{args.steps} steps (unless a run says otherwise) of minibatch {args.batch} on "
        f"{args.events} events at "
        f"{args.resolution}×{args.resolution} (lr {args.lr:g}), {results[0]['device']}; "
        f"steady = median of steps {WARMUP_STEPS + 1}+"
    )
    print(
        f"  {'model':34s} {'steady ms':>9s} {'images/s':>9s} {'×':>6s} {'first s':>8s} "
        f"{'peak GiB':>8s} {'DLT s':>6s} {'train acc':>9s} {'val acc':>8s} {'loss':>6s}"
    )
    base = results[0]["images_per_s"]
    for r in results:
        peak = f"{r['peak_gib']:.2f}" if r["peak_gib"] is not None else "-"
        acc = f"{100 * r['val_accuracy']:.1f} %" if r["val_accuracy"] is not None else "-"
        print(
            f"  {r['run']:34s} {r['steady_step_ms']:9.1f} {r['images_per_s']:9.1f} "
            f"{r['images_per_s'] / base:6.2f} {r['first_step_s']:8.2f} {peak:>8s} "
            f"{r['dlt_s']:6.1f} {100 * r['train_accuracy']:7.1f} % {acc:>8s} "
            f"{r['final_smoothed_loss'] or float('nan'):6.3f}"
        )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
