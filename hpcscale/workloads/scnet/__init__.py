"""SCNet, the paper's sparse network: submanifold convolutions on the events' active pixels.

Same task, loss, optimizer and evaluation as JishNet (``workloads/lartpc.py``), so their TTLs
compare; the data stay sparse from the HDF5 shards to the device (``data.py``) and the model
(``model.py``) runs on the portable sparse convolution of ``sparse.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field, model_validator

from hpcscale.train.workload import Staged
from hpcscale.workloads.lartpc import ClassifierConfig, LArTPCClassifier, too_small, val_order
from hpcscale.workloads.scnet.data import DeviceSparse, SparseBatch, SparsePrefetcher, load_sparse
from hpcscale.workloads.scnet.model import PRESETS, SCNet, feature_side
from hpcscale.workloads.threads import preimport_compiler

MIN_RESOLUTION = 400  # pools of 5, 5, 4, 4 without padding leave one cell at 400 × 400


class SCNetConfig(ClassifierConfig):
    """SCNet options"""

    prefetch: int = Field(2, ge=0, description="minibatches assembled ahead of the step")
    input: Literal["host", "device"] = Field(
        "host",
        description="host: each minibatch assembled by a thread ahead of the step and copied; "
        "device: the rank's events kept on the device, each minibatch assembled there (H200: "
        "11.9 ms per step vs 10.9 on the host path; the step is bound by its Python, which the "
        "device path adds to)",
    )
    geometry_ahead: bool | None = Field(
        None,
        description="--input host: make each minibatch's kernel maps and poolings (what the "
        "layers need of the sites alone) in the prefetch thread, on a CUDA stream of its own, "
        "instead of in the step; default: on where the device is a GPU",
    )

    @model_validator(mode="after")
    def _ahead_needs_the_host_input(self) -> SCNetConfig:
        if self.geometry_ahead and self.input == "device":
            raise ValueError(
                "--geometry-ahead is made in --input host's prefetch thread; --input device has "
                "none (leave --geometry-ahead out, or use --input host)"
            )
        return self


class SCNetWorkload(LArTPCClassifier):
    name = "scnet"
    cut_refusal = (
        "its activations are sparse tensors (coordinates and features), which the pipeline "
        "cannot send between stages"
    )
    Config: ClassVar[type[SCNetConfig]] = SCNetConfig  # type: ignore[assignment]
    config: SCNetConfig

    @classmethod
    def check_resolution(cls, config: Any, resolution: int) -> None:
        if resolution < MIN_RESOLUTION:
            raise too_small(config.model, MIN_RESOLUTION, resolution)
        feature_side(resolution)  # the model's own check

    def stage(self) -> Staged:
        preimport_compiler()  # torch.optim's, while the data is read
        ctx = self.ctx
        self.store, total, seconds = load_sparse(
            ctx.data, "train", ctx.rank, ctx.world_size, limit=ctx.max_events
        )
        self.val_store, _, _ = load_sparse(ctx.data, "val", ctx.rank, ctx.world_size)
        self.resolution = self.store.resolution
        self.check_resolution(self.config, self.resolution)
        active = np.diff(self.store.offsets)
        mean_active = float(active.mean()) if active.size else 0.0
        return Staged(
            train_samples=total,
            local_samples=len(self.store),
            record={
                "events": len(self.store),
                "val_events": len(self.val_store),
                "load_s": round(seconds, 4),
                "active_pixels_mean": round(mean_active, 1),
            },
            summary={
                "folder": str(ctx.data),
                "resolution": self.resolution,
                "train_events_per_rank": len(self.store),
                "train_events": total,
                "active_pixels_mean": mean_active,
                "occupancy": mean_active / self.resolution**2,
                "bytes_per_rank": self.store.nbytes,
                "load_s_rank": seconds,
                "input": self.config.input,
            },
        )

    def make_model(self) -> torch.nn.Module:
        channels, hidden = PRESETS[self.config.model]
        return SCNet(
            self.resolution, channels, hidden, classes=5, softmax=self.config.loss == "paper"
        )

    def batches(self, order: Sequence[np.ndarray]) -> Iterator[SparseBatch]:
        if self.config.input == "device":
            if not hasattr(self, "train_device"):
                self.train_device = DeviceSparse(self.store, self.ctx.device)
            return self.train_device.batches(order)
        prefetcher = SparsePrefetcher(
            self.store, self.ctx.device, self.config.prefetch, self.geometry_maker()
        )
        return prefetcher.batches(order)

    def val_batches(self) -> Iterator[SparseBatch]:
        order = val_order(len(self.val_store), self.ctx.batch)
        if self.config.input == "device":
            return DeviceSparse(self.val_store, self.ctx.device).batches(order)
        prefetcher = SparsePrefetcher(self.val_store, self.ctx.device, 2, self.geometry_maker())
        return prefetcher.batches(order)

    def geometry_maker(self) -> Callable[[torch.Tensor, int], Any] | None:
        """``SCNet.geometry`` where the prefetch thread makes it (``--geometry-ahead``)."""
        ahead = self.config.geometry_ahead
        if ahead is None:
            ahead = self.ctx.device.type == "cuda"
        return self.model.geometry if ahead else None  # type: ignore[return-value]

    def forward(self, net: torch.nn.Module, batch: SparseBatch) -> torch.Tensor:
        return net(batch.coords, batch.features, batch.size, batch.geometry)


WORKLOAD = SCNetWorkload
