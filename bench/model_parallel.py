"""Data vs model parallelism at equal devices: JishNet over 2 GPUs both ways (issue 32).

Usage: python bench/model_parallel.py [--data FOLDER] [--model jishnet] [--ranks 2]
                                      [--batches 7,14,28,56] [--epochs 0.2]

For each minibatch in ``--batches``, one ``hpcscale run`` data-parallel (``--ranks`` ranks)
and one model-parallel (``--model-parallel RANKS``: one pipeline over all of them), each in its
own folder under ``runs-mp/``; prints per run: images/s (steady), peak memory per GPU, the
pipeline's bubble and activation bytes, or the reason it failed ("out of GPU memory": the
largest minibatch that fits is the last one that ran). Without ``--data``, 3600 × 3600 events
are generated once into ``runs-mp/events``. Needs a node with ``--ranks`` GPUs; not measured on
this project's CI machine (CPU only), and the two-GPU machine was not lent when it was written.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def run(ranks: int, model: str, data: Path, batch: int, epochs: float, k: int) -> dict:
    out = Path("runs-mp") / f"{model}-b{batch}-{'mp' if k > 1 else 'dp'}{ranks}"
    cmd = [sys.executable, "-m", "hpcscale", "run", "--ranks", str(ranks), "--model", model,
           "--data", str(data), "--out", str(out), "--batch", str(batch), "--epochs", str(epochs),
           "--no-stop-at-target"]  # fmt: skip
    if k > 1:
        cmd += ["--model-parallel", str(k)]
    subprocess.run(cmd, capture_output=True, text=True)
    path = out / "summary.json"
    return json.loads(path.read_text()) if path.exists() else {"status": "no summary"}


def row(s: dict) -> str:
    if s.get("status") != "completed":
        return f"{s.get('status')}: {(s.get('failure') or {}).get('reason', '-')}"
    p = s.get("pipeline") or {}
    peaks = [d["peak_memory_gib"] for d in p.get("per_device", [])] or [
        s.get("peak_device_memory_gib")
    ]
    text = f"{s.get('samples_per_s_steady') or 0:8.1f} images/s, peak GiB per GPU {peaks}"
    if p:
        text += (
            f", bubble {100 * p['bubble_fraction']:.0f} %, "
            f"{p['activation_bytes_per_step'] / 2**20:.1f} MiB activations/step"
        )
    return text


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path)
    ap.add_argument("--model", default="jishnet")
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--batches", default="7,14,28,56")
    ap.add_argument("--epochs", type=float, default=0.2)
    args = ap.parse_args()
    data = args.data
    if data is None:
        from hpcscale.data.generate import generate  # numpy, h5py: only when generating

        data = Path("runs-mp/events")
        if not (data / "manifest.json").exists():
            generate(data, 400, resolution=3600, seed=0, workers=8)
    for batch in (int(b) for b in args.batches.split(",")):
        for k in (1, args.ranks):
            s = run(args.ranks, args.model, data, batch, args.epochs, k)
            way = "data " if k == 1 else "model"
            print(f"batch {batch:4d} {way} ×{args.ranks}: {row(s)}", flush=True)


if __name__ == "__main__":
    main()
