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

from hpcscale.errors import UserError
from hpcscale.train.workload import Staged, StepResult
from hpcscale.workloads.graphs import Capacity, GraphedStep
from hpcscale.workloads.lartpc import (
    ClassifierConfig,
    LArTPCClassifier,
    loss_fn,
    too_small,
    val_order,
)
from hpcscale.workloads.scnet.data import DeviceSparse, SparseBatch, SparsePrefetcher, load_sparse
from hpcscale.workloads.scnet.model import PRESETS, Geometry, SCNet, feature_side
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
        "layers need of the sites alone) in the prefetch threads, on CUDA streams of their own, "
        "instead of in the step; default: on where the device is a GPU",
    )
    prefetch_threads: int | None = Field(
        None,
        ge=1,
        le=16,
        description="--input host: threads making minibatches in turn; default: 2 where the "
        "geometry is made ahead on a GPU (one thread then bounds a step replayed as a CUDA "
        "graph), else 1",
    )
    deterministic_backward: bool | None = Field(
        None,
        description="the convolutions' feature gradient gathered over the mirrored kernel "
        "offsets instead of scattered with atomics: reproducible bit for bit, less GPU time, "
        "more ops on the host (which a CUDA graph does not replay: H200, 2,257 vs 2,054 "
        "images/s); default: on where the step is a CUDA graph",
    )
    cuda_graph: bool | None = Field(
        None,
        json_schema_extra={"needs_gpu": True},
        description="pad each minibatch's geometry to sizes that only grow (the largest seen "
        "and a fifth more) and replay the step (forward, loss, backward) as a CUDA graph, "
        "captured again only when the sizes grow (GPUs, with --geometry-ahead, not with "
        "--compile); default: on where those hold",
    )

    @model_validator(mode="after")
    def _fast_paths_that_go_together(self) -> SCNetConfig:
        if self.geometry_ahead and self.input == "device":
            raise ValueError(
                "--geometry-ahead is made in --input host's prefetch thread; --input device has "
                "none (leave --geometry-ahead out, or use --input host)"
            )
        if self.prefetch_threads is not None and self.input == "device":
            raise ValueError("--prefetch-threads: --input device has no prefetch thread")
        if self.cuda_graph and (self.input == "device" or self.geometry_ahead is False):
            raise ValueError(
                "--cuda-graph replays a step whose geometry was made ahead; it needs --input host "
                "and --geometry-ahead"
            )
        if self.cuda_graph and self.compile != "off":
            raise ValueError("--cuda-graph and --compile: choose one (each captures the step)")
        if self.cuda_graph and self.bf16:
            raise ValueError(
                "--cuda-graph and --bf16: not together (autocast's cast cache and a captured "
                "step were never tried together here); SCNet's default is fp32"
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
            self.resolution, channels, hidden, classes=5, softmax=self.config.loss == "paper",
            deterministic=self.deterministic(),
        )  # fmt: skip

    def deterministic(self) -> bool:
        asked = self.config.deterministic_backward
        return self.graph_on() if asked is None else asked

    def graph_on(self) -> bool:
        """Whether the training step is a CUDA graph (``--cuda-graph``, or its default)."""
        cfg, gpu = self.config, self.ctx.device.type == "cuda"
        if cfg.cuda_graph and not gpu:
            raise UserError("--cuda-graph needs a GPU (the device is the CPU)")
        default = (
            cfg.input == "host"
            and cfg.geometry_ahead is not False
            and cfg.compile == "off"
            and not cfg.bf16
        )
        return gpu and (cfg.cuda_graph if cfg.cuda_graph is not None else default)

    def batches(self, order: Sequence[np.ndarray]) -> Iterator[SparseBatch]:
        if self.config.input == "device":
            if not hasattr(self, "train_device"):
                self.train_device = DeviceSparse(self.store, self.ctx.device)
            return self.train_device.batches(order)
        maker = self.geometry_maker()
        threads = self.config.prefetch_threads or (
            2 if maker and self.ctx.device.type == "cuda" else 1
        )
        prefetcher = SparsePrefetcher(
            self.store, self.ctx.device, self.config.prefetch, maker, threads
        )
        return prefetcher.batches(order)

    def val_batches(self) -> Iterator[SparseBatch]:
        order = val_order(len(self.val_store), self.ctx.batch)
        if self.config.input == "device":
            return DeviceSparse(self.val_store, self.ctx.device).batches(order)
        maker = self.geometry_maker(train=False)
        prefetcher = SparsePrefetcher(self.val_store, self.ctx.device, 2, maker)
        return prefetcher.batches(order)

    def geometry_maker(self, train: bool = True) -> Callable[[torch.Tensor, int], Any] | None:
        """``SCNet.geometry`` where the prefetch thread makes it (``--geometry-ahead``), padded
        to the grow-only capacity where the training step is a CUDA graph."""
        ahead = self.config.geometry_ahead
        if ahead is None:
            ahead = self.ctx.device.type == "cuda" and self.config.input == "host"
        if not ahead:
            return None
        model: SCNet = self.model  # type: ignore[assignment]
        if getattr(self, "capacity", None) is None or not train:
            return model.geometry

        def padded(coords: torch.Tensor, batch_size: int) -> Geometry:
            geometry = model.geometry(coords, batch_size)
            return geometry.padded(self.capacity.fit(geometry.sizes()))  # type: ignore[union-attr]

        return padded

    # -- the step as a CUDA graph (--cuda-graph) ------------------------------------------------
    def build(self, steps_per_epoch: int) -> None:
        super().build(steps_per_epoch)
        self.capacity = Capacity() if self.graph_on() else None
        self.graphed: GraphedStep | None = None
        self.graphed_for: Geometry | None = None  # the geometry (shapes) it was captured with

    def step(self, batch: SparseBatch) -> StepResult:
        geometry = batch.geometry
        if geometry is None or geometry.capacity is None or batch.size != self.ctx.batch:
            return super().step(batch)  # no graph, or the epoch's short last minibatch
        current = self.graphed_for.capacity if self.graphed_for is not None else None
        if current != geometry.capacity:
            if current is not None and all(
                c <= k for c, k in zip(geometry.capacity, current, strict=True)
            ):
                return super().step(batch)  # prefetched before the sizes last grew
            self.graphed = None  # the sizes grew: its memory goes before the next capture
            self.graphed_for = geometry
            self.graphed = GraphedStep([self.graph_phase], [], warmup=2)
        self.model.train()
        loss, correct = self.graphed(  # type: ignore[misc]
            geometry.fit(batch.features), batch.y, *geometry.tensors()
        )
        return StepResult(loss, {"acc": correct})

    def graph_phase(self, features: torch.Tensor, y: torch.Tensor, *tensors: torch.Tensor) -> Any:
        """LArTPCClassifier.step on a padded geometry's tensors: what the graph captures."""
        geometry = self.graphed_for.with_tensors(tensors)  # type: ignore[union-attr]
        self.optimizer.zero_grad(set_to_none=False)  # the gradients are views of the bucket
        with self.autocast:
            output = self.model.layers(features, geometry)  # type: ignore[operator]
        loss = loss_fn(output, y)
        loss.backward()
        return loss.detach(), (output.argmax(1) == y).float().mean()

    def forward(self, net: torch.nn.Module, batch: SparseBatch) -> torch.Tensor:
        return net(batch.coords, batch.features, batch.size, batch.geometry)


WORKLOAD = SCNetWorkload
