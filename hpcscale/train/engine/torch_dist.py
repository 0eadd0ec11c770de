"""torch.distributed backend: NCCL on GPUs, Gloo on CPU, rendezvous through env://."""

from __future__ import annotations

import contextlib
import datetime
import os

import torch
import torch.distributed as dist

from hpcscale.train.engine.base import Engine, PeerFailure, pick_device
from hpcscale.train.jobenv import JobEnvironment


class TorchEngine(Engine):
    name = "torch"

    def __init__(self, jobenv: JobEnvironment, timeout_s: float, device: str) -> None:
        self.rank, self.world_size, self.local_rank = (
            jobenv.rank,
            jobenv.world_size,
            jobenv.local_rank,
        )
        self.device = pick_device(jobenv.local_rank, device)
        self._active = jobenv.world_size > 1
        if not self._active:
            return
        os.environ.setdefault("MASTER_ADDR", jobenv.master_addr)
        os.environ.setdefault("MASTER_PORT", str(jobenv.master_port))
        backend = "nccl" if self.device.type == "cuda" else "gloo"
        # Fail a collective that waits for a dead peer instead of hanging (NCCL: async errors).
        os.environ.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1")
        kwargs = {"device_id": self.device} if backend == "nccl" else {}
        dist.init_process_group(
            backend,
            init_method="env://",
            rank=self.rank,
            world_size=self.world_size,
            timeout=datetime.timedelta(seconds=timeout_s),
            **kwargs,
        )

    def broadcast_parameters(self, module: torch.nn.Module) -> None:
        if not self._active:
            return
        with torch.no_grad():
            for tensor in list(module.parameters()) + list(module.buffers()):
                self._call(dist.broadcast, tensor, src=0)

    def allreduce_mean_(self, flat: torch.Tensor) -> None:
        if self._active:
            self._call(dist.all_reduce, flat, op=dist.ReduceOp.SUM)
            flat.div_(self.world_size)

    def allreduce_sum_(self, flat: torch.Tensor) -> None:
        if self._active:
            self._call(dist.all_reduce, flat, op=dist.ReduceOp.SUM)

    def barrier(self) -> None:
        if self._active:
            self._call(dist.barrier)

    def shutdown(self) -> None:
        if self._active and dist.is_initialized():
            # A broken group cannot always be torn down cleanly.
            with contextlib.suppress(Exception):
                dist.destroy_process_group()

    @staticmethod
    def _call(fn, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        try:
            fn(*args, **kwargs)
        except (RuntimeError, dist.DistBackendError) as exc:  # Gloo/NCCL peer loss, timeouts
            raise PeerFailure(
                f"collective {fn.__name__} failed: {str(exc).splitlines()[0]}"
            ) from exc


ENGINE = TorchEngine
