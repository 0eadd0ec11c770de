"""Training throughput and start-up, through the real training core, one GPU: the bench.

Each ``--run`` is a fresh ``python -m hpcscale.train`` process (so start-up and the first step
are what a job sees) that trains a fixed number of steps (no early stop) on the same simulated
events, then validates; its figures come from the job's own records and summary. ``--run
textbook`` is the paper-era loop for comparison (fp32, eager, each image decompressed
synchronously in Python and copied from pageable memory, no allreduce), in its own process too.
Printed per run:

- images/s per GPU, steady state (minibatch / median time between consecutive steps from step 6
  on) and its ratio to the first run; the first step (cuDNN's search, compilation) separately;
- the start-up timeline (DLT's parts: imports, device + communicator, staging and its loading,
  model build, first step) and the median step split (data wait, host-to-device,
  forward + backward, allreduce, optimizer);
- peak GPU memory, and the training (last 50 steps) and validation accuracy after the steps.

Usage: python bench/workloads.py [--events 2000] [--resolution 3600] [--steps 600] [--lr 1e-4]
       [--run textbook] [--run "jishnet --no-bf16"] [--run "jishnet --compile default"] ...
       (a run's own options come last and win)
       python bench/workloads.py --run 3dgan-small --run 3dgan --steps 200 (showers/s)
       python bench/workloads.py --run cms-jets-small --run "cms-jets --batch 64" (images/s)

Each model trains on its own kind of data set (LArTPC events, calorimeter showers, jet images),
generated once per kind and size; --batch and --lr default to each model's own (JishNet's lr
here: 1e-4), and the "val" column is the validation figure the model declares.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

from hpcscale import workloads
from hpcscale.tables import quality
from hpcscale.train.records import WARMUP_STEPS, read_records

TRAIN_ACC_STEPS = 50  # training accuracy: mean global accuracy of the last steps
SPLIT = (  # step split columns: summary key → header
    ("data_wait_s", "wait"), ("h2d_s", "h2d"), ("compute_s", "fwd+bwd"),
    ("allreduce_s", "allred"), ("update_s", "optim"), ("io_s", "io"), ("fom_s", "FoM eval"),
)  # fmt: skip
PARTS = ("imports", "device", "staging", "build", "first_step")


def train(
    events: Path, out: Path, run: str, steps: int, batch: int | None, lr: float | None
) -> dict | None:
    """One job of ``steps`` steps through the training core; returns its figures (None: the
    job failed)."""
    args = shlex.split(run)
    if "--batch" in args:
        batch = int(args[args.index("--batch") + 1])
    batch = batch or workloads.get(args[0]).default_batch
    train_events = json.loads((events / "manifest.json").read_text())["splits"]["train"]
    epochs = steps / (train_events // batch)
    if lr is None and workloads.data_kind(args[0]) == "lartpc":
        lr = 1e-4
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
        *(["--lr", str(lr)] if lr else []),
        "--seed",
        "0",
        *args[1:],
    ]  # fmt: skip  (the run's own options last: they win)
    start = time.time()
    if subprocess.run(cmd).returncode:
        return None  # its own error is above; the other runs go on
    wall = time.time() - start
    s = json.loads((out / "summary.json").read_text())
    rows = read_records(out / "rank-0.jsonl")
    last = [r for r in rows if r["kind"] == "sync"][-TRAIN_ACC_STEPS:]
    accs = [r["global_acc"] for r in last if "global_acc" in r]
    return {
        "run": run,
        "batch": batch,
        "unit": s.get("sample_unit"),
        "steps": s["steps"],
        "steady_step_ms": 1e3 * s["steady_step_s"],
        "images_per_s": s["samples_per_s_steady"],
        "images_per_s_wall": s["samples_per_s"],
        "first_step_s": s["dlt_parts_s"]["first_step"],
        "dlt_s": s["dlt_s"],
        "load_s": s["data"].get("load_s_rank"),
        "dlt_parts_s": s["dlt_parts_s"],
        "split_ms": {k: 1e3 * v for k, v in s["step_time_split_s"].items()},
        "peak_gib": s.get("peak_device_memory_gib"),
        "val": quality(s),
        "train_accuracy": sum(accs) / len(accs) if accs else None,
        "final_smoothed_loss": s["final_smoothed_loss"],
        "wall_s": wall,
        "device": s["provenance"].get("gpu") or s["provenance"]["device"],
    }


def textbook(events: Path, steps: int, batch: int) -> dict:
    """The paper-era loop, in a process of its own (``--textbook-worker``)."""
    cmd = [sys.executable, __file__, "--textbook-worker", str(events), str(steps), str(batch)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def textbook_worker(events: Path, steps: int, batch: int) -> None:
    import blosc
    import numpy as np
    import torch

    from hpcscale.data.store import Codec, load_shard
    from hpcscale.workloads.jishnet.model import JishNet
    from hpcscale.workloads.lartpc import loss_fn

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = True
    store, _ = load_shard(events, "train", 0, 1, Codec())
    r = store.resolution
    model = JishNet(r).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    times = []
    for step in range(steps):
        idx = [(step * batch + k) % len(store) for k in range(batch)]
        t = time.perf_counter()
        images = [
            np.frombuffer(blosc.decompress(store.blobs[i]), dtype=np.float32).reshape(1, r, r)
            for i in idx
        ]
        x = torch.from_numpy(np.stack(images)).to(device)
        y = torch.as_tensor(store.labels[idx]).to(device)
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    steady = statistics.median(times[WARMUP_STEPS:])
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
    print(json.dumps({
        "run": "textbook", "steps": steps, "batch": batch, "unit": "images",
        "steady_step_ms": 1e3 * steady,
        "images_per_s": batch / steady, "first_step_s": times[0], "peak_gib": peak,
    }))  # fmt: skip


def _f(value: float | None, spec: str) -> str:
    """``value`` formatted, or a dash as wide as the field."""
    return "-".rjust(int(spec.split(".")[0])) if value is None else format(value, spec)


def report(results: list[dict], args: argparse.Namespace) -> None:
    print(
        f"\n{args.steps} steps per run on {args.events} samples of each model's data set "
        f"(LArTPC at {args.resolution}×{args.resolution}), {results[-1].get('device', '?')}; "
        f"steady = median of steps {WARMUP_STEPS + 1}+; samples/s in each model's unit"
    )
    base = results[0]["images_per_s"]
    heads = ("batch", "steady ms", "samples/s", "×", "wall s/s", "first s", "peak GiB",
             "train acc", "val", "loss")  # fmt: skip
    print(f"  {'run':34s} {'unit':>8s} " + " ".join(f"{h:>9s}" for h in heads))
    for r in results:
        val = r.get("val") or ("", "-")
        print(
            f"  {r['run']:34s} {r.get('unit') or '':>8s} {r.get('batch') or 0:9d} "
            f"{r['steady_step_ms']:9.1f} {r['images_per_s']:9.1f} "
            f"{r['images_per_s'] / base:9.2f} {_f(r.get('images_per_s_wall'), '9.1f')} "
            f"{r['first_step_s']:9.2f} {_f(r['peak_gib'], '9.2f')} "
            f"{_f(r.get('train_accuracy') and 100 * r['train_accuracy'], '9.1f')} "
            f"{(val[0] + ' ' + val[1]):>9s} {_f(r.get('final_smoothed_loss'), '9.3f')}"
        )
    core = [r for r in results if "dlt_parts_s" in r]
    if not core:
        return
    print(f"\n  start-up (s)                       {'DLT':>6s} {'−load':>6s} "
          + " ".join(f"{p:>10s}" for p in PARTS) + f" {'load':>6s}")  # fmt: skip
    for r in core:
        parts = r["dlt_parts_s"]
        print(
            f"  {r['run']:34s} {r['dlt_s']:6.2f} {r['dlt_s'] - (r['load_s'] or 0):6.2f} "
            + " ".join(_f(parts.get(p), "10.2f") for p in PARTS)
            + f" {_f(r['load_s'], '6.2f')}"
        )
    print("\n  step split (ms, medians)           " + " ".join(f"{h:>8s}" for _, h in SPLIT))
    for r in core:
        print(f"  {r['run']:34s} " + " ".join(_f(r["split_ms"].get(k), "8.1f") for k, _ in SPLIT))


def main() -> None:
    if sys.argv[1:2] == ["--textbook-worker"]:
        textbook_worker(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=2000)
    ap.add_argument("--resolution", type=int, default=3600)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--textbook-steps", type=int, default=40)
    ap.add_argument("--batch", type=int, default=None, help="default: each model's")
    ap.add_argument("--lr", type=float, default=None, help="default: each model's (JishNet 1e-4)")
    ap.add_argument("--run", action="append", help="model and its options, or textbook (repeat)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/hpcscale-bench-workloads"))
    args = ap.parse_args()
    runs = args.run or ["textbook", "jishnet --no-bf16", "jishnet", "jishnet --compile default",
                        "scnet"]  # fmt: skip
    results = []
    for i, run in enumerate(runs):
        model = "jishnet" if run == "textbook" else shlex.split(run)[0]
        kind = workloads.data_kind(model)
        name = f"events-{args.resolution}px" if kind == "lartpc" else kind
        events = args.out / f"{name}-{args.events}"
        if not (events / "manifest.json").exists():
            workloads.generator(model)(events, args.events, resolution=args.resolution, seed=0)
        if run == "textbook":
            results.append(textbook(events, args.textbook_steps, args.batch or 7))
        else:
            out = args.out / f"job-{i}-{int(time.time())}"
            result = train(events, out, run, args.steps, args.batch, args.lr)
            if result is None:
                print(f"run {run!r} failed: left out of the table", flush=True)
                continue
            results.append(result)
        print(json.dumps(results[-1]), flush=True)
    if results:
        report(results, args)


if __name__ == "__main__":
    main()
