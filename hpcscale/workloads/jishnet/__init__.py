"""JishNet, the paper's dense network, on Blosc-compressed 3600 × 3600 event images.

Staging (the paper's DLT) reads this rank's 1/N of the events (every N-th) and keeps each image
Blosc-compressed in memory; a prefetch thread decompresses each minibatch straight into a pinned
buffer and copies it to the device on a side stream (``data.Prefetcher``).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import Field

from hpcscale.data.store import Codec, load_shard
from hpcscale.errors import UserError
from hpcscale.train.workload import Split, Staged
from hpcscale.workloads.jishnet.data import DenseBatch, Prefetcher
from hpcscale.workloads.jishnet.model import (
    CUT_POINTS,
    MIN_RESOLUTION,
    PARTS,
    JishNet,
    JishNetStage,
    feature_side,
)
from hpcscale.workloads.lartpc import (
    ClassifierConfig,
    LArTPCClassifier,
    loss_fn,
    too_small,
    val_order,
)


class JishNetConfig(ClassifierConfig):
    """JishNet options"""

    codec: str = Field(
        "blosclz:9:none",
        pattern=r"^(blosclz|lz4|lz4hc|zstd|zlib):[0-9]:(none|byte|bit)$",
        description="Blosc codec:level:shuffle for the in-memory images, e.g. blosclz:9:none, "
        "zstd:9:none, lz4:5:byte",
    )
    blosc_threads: int = Field(0, ge=0, description="Blosc threads; 0: Blosc's default")
    prefetch: int = Field(2, ge=0, description="minibatches prepared ahead of the step")
    channels_last: bool = Field(False, description="channels-last memory format (GPUs)")
    cudnn_benchmark: bool = Field(
        True,
        description="let cuDNN time its convolution algorithms in the first step (GPUs): "
        "seconds once, then the fastest step",
    )
    cudnn_benchmark_limit: int = Field(
        10, ge=0, description="algorithms cuDNN times per convolution (0: all)"
    )
    fused_first_block: bool | None = Field(
        None,
        description="the first block (conv 5×5 → ELU → max-pool 5) as one Triton kernel (GPUs; "
        "H100: steps 2.4× faster); default: on where the device is a GPU and Triton is installed",
    )


class JishNetWorkload(LArTPCClassifier):
    name = "jishnet"
    bf16_on_gpus = True  # H100, 1,000 steps: val acc 56.0 % vs fp32 55.5 %; steps 20 % faster
    Config: ClassVar[type[JishNetConfig]] = JishNetConfig  # type: ignore[assignment]
    config: JishNetConfig
    cut_points = CUT_POINTS  # after each convolution block

    @classmethod
    def check_resolution(cls, config: Any, resolution: int) -> None:
        if feature_side(resolution) < 1:
            raise too_small(config.model, MIN_RESOLUTION, resolution)

    def codec(self) -> Codec:
        cname, level, shuffle = self.config.codec.split(":")
        return Codec(
            cname=cname,  # type: ignore[arg-type]
            clevel=int(level),
            shuffle=shuffle,  # type: ignore[arg-type]
            threads=self.config.blosc_threads,
        )

    def stage(self) -> Staged:
        ctx, codec = self.ctx, self.codec()
        self.store, stats = load_shard(
            ctx.data, "train", ctx.rank, ctx.world_size, codec, limit=ctx.max_events
        )
        self.val_store, _ = load_shard(ctx.data, "val", ctx.rank, ctx.world_size, codec)
        self.resolution = self.store.resolution
        self.check_resolution(self.config, self.resolution)
        return Staged(
            train_samples=stats.total_events,
            local_samples=len(self.store),
            record={
                "events": len(self.store),
                "val_events": len(self.val_store),
                "load_s": round(stats.seconds, 4),
                "compression_ratio": round(stats.ratio, 1),
            },
            summary={
                "folder": str(ctx.data),
                "resolution": self.resolution,
                "train_events_per_rank": len(self.store),
                "train_events": stats.total_events,
                "codec": asdict(codec),
                "compression_ratio": stats.ratio,
                "load_s_rank": stats.seconds,
            },
        )

    def make_model(self) -> torch.nn.Module:
        if self.ctx.device.type == "cuda":
            # Every step has the same shapes, so let cuDNN time its algorithms once: without
            # this, its heuristic picks for a 1-channel 3600×3600 convolution made steps 10×
            # slower on an H200 (0.94 s vs 0.09 s per step of 7 images).
            torch.backends.cudnn.benchmark = self.config.cudnn_benchmark
            torch.backends.cudnn.benchmark_limit = self.config.cudnn_benchmark_limit
        model = JishNet(
            self.resolution,
            self.config.model,
            softmax=self.config.loss == "paper",
            fused_first_block=self._fused(),
        )
        if self.config.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model

    def _fused(self) -> bool:
        """Whether to fuse the first block: asked for, or by default on GPUs with Triton."""
        asked = self.config.fused_first_block
        gpu = self.ctx.device.type == "cuda"
        has_triton = importlib.util.find_spec("triton") is not None
        if asked and not gpu:
            raise UserError("--fused-first-block needs a GPU (the device is the CPU)")
        if asked and not has_triton:
            raise UserError("--fused-first-block needs Triton (pip install triton)")
        self.first_block = "fused" if (asked is not False and gpu and has_triton) else "unfused"
        if self.first_block == "fused" and self.ctx.compile_cache is not None:
            # Triton's compiled kernels, shared by the jobs of a study (as torch.compile's are)
            os.environ.setdefault("TRITON_CACHE_DIR", str(self.ctx.compile_cache / "triton"))
        return self.first_block == "fused"

    def evaluate(self) -> dict[str, Any]:
        return {**super().evaluate(), "first_block": getattr(self, "first_block", "unfused")}

    def _prefetcher(self, store: Any) -> Prefetcher:
        return Prefetcher(
            store, self.ctx.batch, self.ctx.device, self.config.prefetch, self.config.channels_last
        )

    def batches(self, order: Sequence[np.ndarray]) -> Iterator[DenseBatch]:
        if not hasattr(self, "train_prefetcher"):
            self.train_prefetcher = self._prefetcher(self.store)
        return self.train_prefetcher.batches(order)

    def val_batches(self) -> Iterator[DenseBatch]:
        order = val_order(len(self.val_store), self.ctx.batch)
        return self._prefetcher(self.val_store).batches(order) if order else iter(())

    def forward(self, net: torch.nn.Module, batch: DenseBatch) -> torch.Tensor:
        return net(batch.x)

    def split(self, cuts: Sequence[str]) -> Split:
        """Stages of the built model, cut after each of ``cuts`` (eager: no torch.compile)."""
        names, stages, start = list(PARTS), [], 0
        for end in [names.index(c) + 1 for c in cuts] + [len(names)]:
            stages.append(JishNetStage(self.model, tuple(names[start:end]), self.autocast))
            start = end
        return Split(
            stages,
            inputs=lambda b: b.x,
            target=lambda b: b.y,
            loss=loss_fn,
            metrics=lambda out, y: {"acc": (out.argmax(1) == y).float().mean()},
        )


WORKLOAD = JishNetWorkload
