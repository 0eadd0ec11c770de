"""Data-parallel engines, one module per backend, registered by name."""

from __future__ import annotations

from hpcscale.train.engine.base import Engine, PeerFailure
from hpcscale.train.jobenv import JobEnvironment


def make_engine(name: str, jobenv: JobEnvironment, timeout_s: float, device: str) -> Engine:
    if name == "torch":
        from hpcscale.train.engine.torch_dist import TorchEngine

        return TorchEngine(jobenv, timeout_s, device)
    if name == "horovod":
        from hpcscale.train.engine.horovod import HorovodEngine

        return HorovodEngine(jobenv, timeout_s, device)
    raise ValueError(f"unknown engine {name!r}")


__all__ = ["Engine", "PeerFailure", "make_engine"]
