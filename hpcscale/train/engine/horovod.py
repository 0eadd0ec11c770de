"""Horovod backend (the paper's): allreduce over MPI or Gloo, NCCL on GPUs when built with it.

Horovod reads its own rank and size from the launcher (horovodrun, mpirun, jsrun, srun with
MPI); ranks that srun started for a Horovod without MPI get Gloo's rendezvous from the job
environment (``horovod_gloo``), as horovodrun would give it.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from hpcscale.train.engine import horovod_gloo
from hpcscale.train.engine.base import Engine, PeerFailure, pick_device
from hpcscale.train.jobenv import JobEnvironment


class HorovodEngine(Engine):
    name = "horovod"
    writes_timeline = True

    def __init__(
        self, jobenv: JobEnvironment, timeout_s: float, device: str, timeline: Path | None = None
    ) -> None:
        try:
            import horovod.torch as hvd  # horovod: optional, and only with --engine horovod
        except ImportError as exc:
            raise RuntimeError(
                "engine horovod needs Horovod built with PyTorch support "
                "(`bash scripts/build-horovod.sh` builds and installs it; README, 'Horovod')"
            ) from exc
        self.hvd = hvd
        # A dead peer fails Gloo's collectives after this long instead of hanging.
        os.environ.setdefault("HOROVOD_GLOO_TIMEOUT_SECONDS", str(int(timeout_s)))
        if timeline is not None:  # read by hvd.init(); the coordinator (rank 0) writes it
            os.environ["HOROVOD_TIMELINE"] = str(timeline)
        self._store = None  # rank 0's rendezvous store, when no horovodrun made one
        if horovod_gloo.needed(jobenv, hvd.mpi_built()):
            self._store = horovod_gloo.setup(jobenv, timeout_s)
        hvd.init()
        self.rank, self.world_size, self.local_rank = hvd.rank(), hvd.size(), hvd.local_rank()
        self.device = pick_device(self.local_rank, device)

    def broadcast_parameters(self, module: torch.nn.Module) -> None:
        self._call(self.hvd.broadcast_parameters, module.state_dict(), root_rank=0)

    def allreduce_mean_(self, flat: torch.Tensor) -> None:
        self._call(self.hvd.allreduce_, flat, op=self.hvd.Average, name="hpcscale.flat")

    def allreduce_sum_(self, flat: torch.Tensor) -> None:
        self._call(self.hvd.allreduce_, flat, op=self.hvd.Sum, name="hpcscale.sum")

    def barrier(self) -> None:
        self._call(self.hvd.allreduce, torch.zeros(1), name="hpcscale.barrier")

    def shutdown(self) -> None:
        self.hvd.shutdown()
        if self._store is not None:
            self._store.shutdown()

    def versions(self) -> dict[str, str | None]:
        import horovod  # see __init__

        return {**super().versions(), "horovod": horovod.__version__}

    def _call(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return fn(*args, **kwargs)
        except self.hvd.HorovodInternalError as exc:
            raise PeerFailure(f"horovod {fn.__name__} failed: {exc}") from exc


ENGINE = HorovodEngine
