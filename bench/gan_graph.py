"""3DGAN's CUDA-graph step against its eager step, on a GPU (a CUDA graph cannot run on the CPU).

Three jobs through the training core on the same showers, seed and minibatches: ``--cuda-graph``
(the GPUs' default), ``--no-cuda-graph``, and ``--no-cuda-graph`` again. Printed: the largest
relative difference of the discriminator's and the generator's losses between the graphed and
the eager job, over the eager warm-up steps (1–3: the same arithmetic, so the same numbers), at
the first captured step (4) and over all steps; and the same between the two eager jobs, which
says how far run-to-run nondeterminism (cuDNN's atomics, TF32) alone moves a GAN. With
``NVIDIA_TF32_OVERRIDE=0`` in the environment the convolutions run in full fp32.

Usage: python bench/gan_graph.py --data SHOWERS [--steps 24] [--out /tmp/gan-graph]
       (SHOWERS: e.g. bench/workloads.py's /tmp/hpcscale-bench-workloads/calo3d-4000)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from hpcscale.train.records import read_records

BATCH = 8


def losses(data: Path, out: Path, steps: int, graph: bool) -> list[tuple[float, float]]:
    train = json.loads((data / "manifest.json").read_text())["splits"]["train"]
    cmd = [
        sys.executable, "-m", "hpcscale.train", "--model", "3dgan", "--data", str(data),
        "--out", str(out), "--no-stop-at-target", "--seed", "0", "--batch", str(BATCH),
        "--epochs", repr(steps * BATCH / train), "--cuda-graph" if graph else "--no-cuda-graph",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"{out.name} failed:\n{proc.stderr[-3000:]}")
    return [
        (r["global_d_loss"], r["global_g_loss"])
        for r in read_records(out / "rank-0.jsonl")
        if r["kind"] == "sync"
    ]


def largest(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> float:
    pairs = [(x, y) for p, q in zip(a, b, strict=True) for x, y in zip(p, q, strict=True)]
    return max((abs(x - y) / max(abs(y), 1e-12) for x, y in pairs), default=float("nan"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=24)
    ap.add_argument("--out", type=Path, default=Path("/tmp/gan-graph"))
    args = ap.parse_args()
    runs = {
        name: losses(args.data, args.out / name, args.steps, graph)
        for name, graph in (("graph", True), ("eager", False), ("eager-again", False))
    }
    eager = runs["eager"]
    print(f"3dgan, {len(eager)} steps of {BATCH}: largest relative difference of the d/g losses")
    for name in ("graph", "eager-again"):
        run = runs[name]
        print(
            f"  {name:>11} vs eager: steps 1-3 {largest(run[:3], eager[:3]):.1e}, "
            f"step 4 {largest(run[3:4], eager[3:4]):.1e}, all {largest(run, eager):.1e}"
        )


if __name__ == "__main__":
    main()
