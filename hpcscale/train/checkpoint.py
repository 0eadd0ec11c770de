"""Walltime checkpoints: stop at a step boundary, save, requeue, resume where the job stopped.

Slurm sends USR2 to every task shortly before the time limit (``--signal=USR2@N``; LSF's
``-wa USR2``). Every rank sets a flag; the next step's allreduce carries it, so all ranks stop after
the same step; rank 0 writes ``checkpoint.pt`` (the workload's parts by name: models,
optimizers, schedules; and the loop's data position, TTL smoother and timing state) atomically;
USR2 is then handed back to submitit's own handler, which requeues the job (``scontrol requeue``,
``brequeue``, ``qrerun``: the job environment's), and the next segment resumes from it,
appending to the same records with ``segment`` + 1.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import torch

from hpcscale.fsutil import atomic_write_json

NAME = "checkpoint.pt"
REQUEUE_EXIT = 3  # exit code of a rank that checkpointed and wants the job requeued
_flag = {"preempted": False}
_replaced: dict[str, Any] = {"handler": None}


def install_usr2_handler() -> None:
    """Note USR2 (the ranks stop together after the step whose allreduce carries it). The
    handler this one stands in for — submitit's, inside a submitted job — is kept: after the
    checkpoint, ``hand_over`` gives USR2 back to it, and submitit requeues the job (counting
    timeouts against the executor's limit) as it would have."""
    _replaced["handler"] = signal.getsignal(signal.SIGUSR2)

    def handler(_signum: int, _frame: Any) -> None:
        _flag["preempted"] = True

    signal.signal(signal.SIGUSR2, handler)


def hand_over() -> bool:
    """After the checkpoint: restore the USR2 handler ``install_usr2_handler`` replaced and
    deliver USR2 to it (submitit's requeues the job from rank 0 and ends that process). False
    when there was none to give it to (not a submitit job)."""
    previous = _replaced["handler"]
    if not callable(previous):
        return False
    signal.signal(signal.SIGUSR2, previous)
    signal.raise_signal(signal.SIGUSR2)
    return True


def preempted() -> bool:
    return _flag["preempted"]


def save(folder: Path, parts: dict[str, Any], state: dict[str, Any]) -> None:
    """Write the workload's ``parts`` (modules, optimizers, schedules: anything with
    ``state_dict``) by name, and the loop's ``state``, atomically."""
    path = Path(folder) / NAME
    tmp = path.with_name(f".{NAME}.tmp-{os.getpid()}")
    torch.save(
        {"parts": {name: part.state_dict() for name, part in parts.items()}, "state": state}, tmp
    )
    os.replace(tmp, path)
    atomic_write_json(
        Path(folder) / "checkpoint.json", {"segment": state["segment"], "step": state["step"]}
    )


def next_segment(folder: Path) -> int:
    """The walltime segment a starting process is: 0, or one more than the checkpoint's."""
    path = Path(folder) / "checkpoint.json"
    return json.loads(path.read_text())["segment"] + 1 if path.exists() else 0


def load(folder: Path, parts: dict[str, Any], device: torch.device) -> dict[str, Any] | None:
    """Restore ``parts`` from the job's checkpoint, if there is one; returns the loop's state."""
    path = Path(folder) / NAME
    if not path.exists():
        return None
    saved = torch.load(path, map_location=device, weights_only=False)
    if set(saved["parts"]) != set(parts):
        raise RuntimeError(
            f"{path} holds {sorted(saved['parts'])}, but this workload has {sorted(parts)}"
        )
    for name, part in parts.items():
        part.load_state_dict(saved["parts"][name])
    return saved["state"]
