"""What a rank does around its training: the provenance its summary records, its peak device
memory, its signal handlers, and the wait for the other ranks' statuses (``train.loop``)."""

from __future__ import annotations

import os
import platform
import signal
import socket
import time
from pathlib import Path
from typing import Any

import torch

from hpcscale import __version__
from hpcscale.containers.runtime import recorded_digest, runtime_inside
from hpcscale.errors import Terminated
from hpcscale.train.engine.base import Engine
from hpcscale.train.jobenv import JobEnvironment


def peak_memory_gib(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 3)


def provenance(engine: Engine, jobenv: JobEnvironment) -> dict[str, Any]:
    versions = engine.versions()
    return {
        "hpcscale": __version__,
        "python": platform.python_version(),
        **versions,
        "engine": engine.name,
        "launcher": jobenv.launcher,
        "job_id": jobenv.job_id,
        "nodes": list(jobenv.nodes) or [socket.gethostname()],
        "rendezvous": f"{jobenv.master_addr}:{jobenv.master_port}",
        "device": str(engine.device),
        "gpu": torch.cuda.get_device_name(engine.device) if engine.device.type == "cuda" else None,
        "site_digest": os.environ.get("HPCSCALE_SITE_DIGEST"),
        "image": os.environ.get("HPCSCALE_IMAGE"),
        "image_digest": os.environ.get("HPCSCALE_IMAGE_DIGEST") or image_digest(),
        "container": runtime_inside(os.environ),
    }


def image_digest() -> str | None:
    image = os.environ.get("HPCSCALE_IMAGE")
    if not image:
        return None
    return recorded_digest(image)


def install_signal_handlers() -> None:
    """SIGTERM and SIGINT become ``Terminated``: the loop stops, writes its status and ends."""

    def handler(signum: int, _frame: Any) -> None:
        raise Terminated(f"stopped by {signal.Signals(signum).name}")

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)


def wait_for_statuses(folder: Path, world: int, grace_s: float) -> None:
    """Rank 0 waits up to ``grace_s`` for every rank's status file before summarising."""
    deadline = time.time() + grace_s
    while time.time() < deadline:
        if all((folder / f"rank-{r}.status.json").exists() for r in range(world)):
            return
        time.sleep(0.2)
