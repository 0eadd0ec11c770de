"""What the training loop needs from a data-parallel backend."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch

from hpcscale.errors import PeerFailure

__all__ = ["Engine", "PeerFailure", "pick_device"]


class Engine(ABC):
    """One engine, made as ``Engine(jobenv, timeout_s, device)`` (plus ``timeline=`` where
    ``writes_timeline``); its module defines ``ENGINE = TheClass`` (``registry.ENGINES``)."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    name: str
    writes_timeline: ClassVar[bool] = False

    @abstractmethod
    def broadcast_parameters(self, module: torch.nn.Module) -> None:
        """Make every rank start from rank 0's parameters."""

    @abstractmethod
    def allreduce_mean_(self, flat: torch.Tensor) -> None:
        """Average ``flat`` over ranks, in place."""

    @abstractmethod
    def allreduce_sum_(self, flat: torch.Tensor) -> None:
        """Sum ``flat`` over ranks, in place."""

    @abstractmethod
    def barrier(self) -> None: ...

    @abstractmethod
    def shutdown(self) -> None: ...

    def versions(self) -> dict[str, str | None]:
        cuda = torch.version.cuda if torch.cuda.is_available() else None
        nccl = None
        if torch.cuda.is_available():
            nccl = ".".join(str(v) for v in torch.cuda.nccl.version())
        return {"torch": torch.__version__, "cuda": cuda, "nccl": nccl}


def pick_device(local_rank: int, requested: str) -> torch.device:
    """cuda:<local rank> when GPUs are visible (round-robin if fewer than ranks), else CPU."""
    if requested == "cpu" or (requested == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError(f"--device {requested} asked for, but no CUDA device is visible")
    device = torch.device("cuda", local_rank % torch.cuda.device_count())
    torch.cuda.set_device(device)
    return device
