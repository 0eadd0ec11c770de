"""Data-parallel engines, one module per backend, registered by name."""

from __future__ import annotations

from pathlib import Path

from hpcscale.train.engine.base import Engine, PeerFailure
from hpcscale.train.jobenv import JobEnvironment


def make_engine(
    name: str,
    jobenv: JobEnvironment,
    timeout_s: float,
    device: str,
    timeline: Path | None = None,
) -> Engine:
    """The engine ``name``; ``timeline``: where Horovod writes its timeline (Horovod only)."""
    if timeline is not None and name != "horovod":
        raise ValueError(f"engine {name!r} writes no timeline")
    if name == "torch":
        from hpcscale.train.engine.torch_dist import TorchEngine

        return TorchEngine(jobenv, timeout_s, device)
    if name == "horovod":
        from hpcscale.train.engine.horovod import HorovodEngine

        return HorovodEngine(jobenv, timeout_s, device, timeline)
    raise ValueError(f"unknown engine {name!r}")


__all__ = ["Engine", "PeerFailure", "make_engine"]
