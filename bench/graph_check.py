"""A workload's CUDA-graph step against its eager step, on a GPU (a graph cannot run on the CPU).

Three jobs through the training core on the same data, seed and minibatches: ``--cuda-graph``
(the GPUs' default for 3dgan and scnet), ``--no-cuda-graph``, and ``--no-cuda-graph`` again.
Printed: the largest relative difference of the step's global figures (``global_*`` of the sync
records: 3DGAN's two losses, SCNet's loss and accuracy) between the graphed and the eager job,
over the eager warm-up steps, at the first captured step and over all steps; and the same
between the two eager jobs, which says how far run-to-run nondeterminism (atomics, TF32) alone
moves the figures. With ``NVIDIA_TF32_OVERRIDE=0`` in the environment cuDNN and cuBLAS run
without TF32.

Usage: python bench/graph_check.py --model 3dgan --data SHOWERS [--steps 24] [--first 4]
       python bench/graph_check.py --model scnet --data EVENTS --first 3
       (data: e.g. bench/workloads.py's /tmp/hpcscale-bench-workloads/calo3d-4000)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from hpcscale import workloads
from hpcscale.train.records import read_records


def figures(model: str, data: Path, out: Path, steps: int, graph: bool) -> list[list[float]]:
    batch = workloads.get(model).default_batch
    train = json.loads((data / "manifest.json").read_text())["splits"]["train"]
    cmd = [
        sys.executable, "-m", "hpcscale.train", "--model", model, "--data", str(data),
        "--out", str(out), "--no-stop-at-target", "--seed", "0", "--batch", str(batch),
        "--epochs", repr(steps * batch / train), "--cuda-graph" if graph else "--no-cuda-graph",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"{out.name} failed:\n{proc.stderr[-3000:]}")
    rows = [r for r in read_records(out / "rank-0.jsonl") if r["kind"] == "sync"]
    keys = sorted({k for k in rows[0] if k.startswith("global_")}.intersection(*rows))
    return [[float(r[k]) for k in keys] for r in rows]


def largest(a: list[list[float]], b: list[list[float]]) -> float:
    pairs = [(x, y) for p, q in zip(a, b, strict=True) for x, y in zip(p, q, strict=True)]
    return max((abs(x - y) / max(abs(y), 1e-12) for x, y in pairs), default=float("nan"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=24)
    ap.add_argument("--first", type=int, default=4, help="the first captured step (3dgan: 4)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/graph-check"))
    args = ap.parse_args()
    runs = {
        name: figures(args.model, args.data, args.out / name, args.steps, graph)
        for name, graph in (("graph", True), ("eager", False), ("eager-again", False))
    }
    n = min(len(r) for r in runs.values())
    eager, k = runs["eager"][:n], args.first - 1
    print(f"{args.model}, {n} steps: largest relative difference of the global figures")
    for name in ("graph", "eager-again"):
        run = runs[name][:n]
        print(
            f"  {name:>11} vs eager: steps 1-{k} {largest(run[:k], eager[:k]):.1e}, "
            f"step {k + 1} {largest(run[k : k + 1], eager[k : k + 1]):.1e}, "
            f"all {largest(run, eager):.1e}"
        )


if __name__ == "__main__":
    main()
