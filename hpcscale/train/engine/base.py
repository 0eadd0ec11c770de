"""What the training loop needs from a data-parallel backend."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

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

    # What the loop asks of an engine beyond the collectives (typed Any where the type lives
    # above this module: the core's config, the loop, its bucket and MLPerf log). The
    # synchronous engines keep these defaults; an engine whose ranks do not all train alike
    # (``master_worker``: a master that applies and serves, workers that send gradients)
    # overrides them.
    local_update: bool = True  # the loop applies the workload's update on this rank
    evaluates: bool = True  # this rank evaluates (the workload's evaluate) at the end

    def configure(self, core: Any) -> None:
        """The core's options, before the workload is made (the engine's own options)."""
        return None

    def data_shard(self) -> tuple[int, int]:
        """(rank, ranks) as the workload sees them: which share of the data is this rank's."""
        return self.rank, self.world_size

    def exchange(self, bucket: Any, values: Mapping[str, float]) -> dict[str, float]:
        """The step's one exchange: gradients and ``values`` averaged over ranks."""
        return bucket.allreduce_mean(self, values)

    def train(self, loop: Any, mll: Any, local_samples: int) -> int:
        """This rank's part of training (the loop's epochs); returns the last epoch."""
        return loop.run_epochs(mll, local_samples)

    def metrics(self) -> dict[str, Any]:
        """The engine's own figures for the summary."""
        return {}

    def state(self) -> dict[str, Any]:
        """What the engine keeps across a walltime requeue (in the loop's checkpoint state)."""
        return {}

    def restore(self, state: dict[str, Any]) -> None:
        """Take back ``state()`` from the checkpoint."""
        return None

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
