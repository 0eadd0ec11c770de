"""``from hpcscale import track``: a training script's own records, for the full picture.

Inside an hpcscale job that runs a command (``hpcscale run -- python train.py``), the rank's
wrapper (``hpcscale.command``) tells the script where its records go (``HPCSCALE_TRACK_*``);
these calls then write the lines the training core writes (``train/records.py``), so the step
split, DLT and its parts, TTL on the smoothed global loss, the steady state and every report
section work as for the bundled workloads. Outside an hpcscale job every call does nothing.

    track.phase("staging")            # marks where start-up time goes (DLT's parts)
    track.step(loss=loss.item(), samples=len(x), epoch=epoch, data_s=..., compute_s=...)
    track.evaluate(val_accuracy=0.93)

``step`` averages the loss over the ranks when torch.distributed is initialised (one small
allreduce, as the core's step has), so the global and smoothed loss are the core's. No torch
import here: torch is used only if the script has imported it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import deque
from typing import IO, Any

__all__ = ["active", "evaluate", "phase", "step"]


class _Tracker:
    def __init__(self, path: str, t0: float, identity: dict[str, Any]) -> None:
        self.fh: IO[str] = open(path, "a", buffering=1)  # noqa: SIM115 - open for the run
        self.t0, self.identity = t0, identity
        self.step = 0
        self.last = time.time()
        window = int(os.environ.get("HPCSCALE_TRACK_WINDOW", "25"))
        self.losses: deque[float] = deque(maxlen=window)
        target = os.environ.get("HPCSCALE_TRACK_TARGET")
        self.target = float(target) if target else None
        self.reached = False

    def write(self, kind: str, **fields: Any) -> None:
        t = time.time() - self.t0
        line = {"kind": kind, **self.identity, "t": round(t, 6), "t_total": round(t, 6), **fields}
        self.fh.write(json.dumps(line) + "\n")


def _open() -> _Tracker | None:
    path = os.environ.get("HPCSCALE_TRACK_FILE")
    if not path:
        return None
    identity = json.loads(os.environ.get("HPCSCALE_TRACK_ID", "{}"))
    return _Tracker(path, float(os.environ.get("HPCSCALE_TRACK_T0", time.time())), identity)


_TRACKER = _open()


def active() -> bool:
    """True inside an hpcscale job (the calls write records), else False (they do nothing)."""
    return _TRACKER is not None


def phase(name: str) -> None:
    """Mark the start of a start-up phase ("staging", "build", …): DLT's parts are the time
    from one mark to the next, until the first step."""
    if _TRACKER is not None:
        _TRACKER.write("phase", phase=str(name))


def _allreduce(values: list[float]) -> tuple[list[float], float]:
    """The sums of ``values`` over the ranks, and the seconds the allreduce took (the script's
    torch, if it has imported torch and initialised a process group; else as given)."""
    torch = sys.modules.get("torch")
    dist = sys.modules.get("torch.distributed")
    if torch is None or dist is None or not dist.is_available() or not dist.is_initialized():
        return values, 0.0
    device = "cpu"
    if dist.get_backend() == "nccl":
        device = f"cuda:{torch.cuda.current_device()}"
    t = time.perf_counter()
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    out = [float(v) for v in tensor.cpu()]
    return out, time.perf_counter() - t


def step(loss: float, samples: int = 0, epoch: float | None = None, **metrics: Any) -> None:
    """One training step: the rank's local loss (before any averaging), the samples it trained
    on, the epoch (counted from 0), and metrics; those named ``*_s`` are the step's time split
    (``data_s``, ``compute_s``, …). Writes the core's "step" and "sync" lines."""
    tr = _TRACKER
    if tr is None:
        return
    tr.step += 1
    now = time.time()
    local = {k: float(v) for k, v in metrics.items()}
    extra = {"epoch": epoch} if epoch is not None else {}
    tr.write("step", step=tr.step, loss=float(loss), samples=int(samples), **extra,
             step_s=round(now - tr.last, 6), **local)  # fmt: skip
    tr.last = now
    world = int(os.environ.get("WORLD_SIZE", "1"))
    (total, n), wait = (
        _allreduce([float(loss), float(samples)])
        if world > 1
        else (([float(loss), float(samples)], 0.0))
    )
    global_loss = total / world
    tr.losses.append(global_loss)
    full = len(tr.losses) == tr.losses.maxlen
    smoothed = sum(tr.losses) / len(tr.losses) if full else None
    if tr.target is not None and not tr.reached and smoothed is not None and smoothed < tr.target:
        tr.reached = True
        tr.write("phase", phase="target", step=tr.step, ttl_s=round(time.time() - tr.t0, 6))
    tr.write("sync", step=tr.step, allreduce_s=round(wait, 6), global_loss=global_loss,
             smoothed_loss=smoothed, global_samples=int(n))  # fmt: skip


def evaluate(**metrics: Any) -> None:
    """The run's evaluation (``val_accuracy=…``); the last one goes into the summary."""
    if _TRACKER is not None:
        _TRACKER.write("eval", **{k: v for k, v in metrics.items()})
