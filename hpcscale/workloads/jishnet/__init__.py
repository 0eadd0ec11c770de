"""JishNet, the paper's dense network, on 3600 × 3600 event images.

``--input blosc`` (default, the paper's): staging (the paper's DLT) reads this rank's 1/N of the
events (every N-th) and keeps each image Blosc-compressed in memory; a prefetch thread
decompresses each minibatch straight into a pinned buffer and copies it to the device on a side
stream (``data.Prefetcher``). ``--input sparse-device``: staging keeps the events' deposits (as
SCNet does) and each dense minibatch is scattered on the device (``data.DeviceDense``): the same
images, without 364 MB of decompression and copying per minibatch.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field

from hpcscale.data.manifest import LARTPC, read_manifest
from hpcscale.data.store import Codec, load_shard
from hpcscale.errors import UserError
from hpcscale.train.workload import Split, Staged
from hpcscale.workloads.jishnet.data import DenseBatch, DeviceDense, Prefetcher
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
from hpcscale.workloads.scnet.data import load_sparse
from hpcscale.workloads.threads import Background, preimport_compiler


class JishNetConfig(ClassifierConfig):
    """JishNet options"""

    input: Literal["blosc", "sparse-device"] = Field(
        "blosc",
        description="blosc: the paper's path (images Blosc-compressed in memory at staging, "
        "decompressed per minibatch by a thread, copied to the device); sparse-device: the "
        "events' deposits kept as read and scattered into the dense minibatch on the device "
        "(the same images; H200: no host work per step, staging without compression)",
    )
    codec: str = Field(
        "blosclz:9:none",
        pattern=r"^(blosclz|lz4|lz4hc|zstd|zlib):[0-9]:(none|byte|bit)$",
        description="Blosc codec:level:shuffle for the in-memory images, e.g. blosclz:9:none, "
        "zstd:9:none, lz4:5:byte",
    )
    blosc_threads: int = Field(0, ge=0, description="Blosc threads; 0: Blosc's default")
    stage_threads: int = Field(
        1,
        ge=0,
        description="events compressed at once while staging (--input blosc; 0: one per core, "
        "at most 8)",
    )
    warm_up: bool = Field(
        True,
        description="on GPUs, run one forward and backward pass on a zero minibatch while the "
        "data is staged (cuDNN's algorithm search, the fused block's Triton compilation), so "
        "the first step does not wait for them (not with --compile)",
    )
    prefetch: int = Field(2, ge=0, description="minibatches prepared ahead of the step")
    channels_last: bool | None = Field(
        None,
        description="channels-last memory format for the convolutions after the first block "
        "(cuDNN's native layout for bf16: no NCHW↔NHWC conversions; H200, sparse-device input: "
        "435 vs 383 images/s); default: on where the device is a GPU",
    )
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
        json_schema_extra={"needs_gpu": True},
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
        preimport_compiler()
        self.warming = self.start_warm_up()
        if self.config.input == "sparse-device":
            return self.stage_sparse()
        ctx, codec = self.ctx, self.codec()
        self.store, stats = load_shard(
            ctx.data,
            "train",
            ctx.rank,
            ctx.world_size,
            codec,
            limit=ctx.max_events,
            threads=self.config.stage_threads,
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
                "input": "blosc",
            },
        )

    def stage_sparse(self) -> Staged:
        """The deposits of this rank's events, as read (``--input sparse-device``)."""
        ctx = self.ctx
        self.sparse, total, seconds = load_sparse(
            ctx.data, "train", ctx.rank, ctx.world_size, limit=ctx.max_events
        )
        self.val_sparse, _, _ = load_sparse(ctx.data, "val", ctx.rank, ctx.world_size)
        self.resolution = self.sparse.resolution
        self.check_resolution(self.config, self.resolution)
        self.train_dense = DeviceDense(self.sparse, ctx.batch, ctx.device)
        self.val_dense = DeviceDense(self.val_sparse, ctx.batch, ctx.device)
        return Staged(
            train_samples=total,
            local_samples=len(self.sparse),
            record={
                "events": len(self.sparse),
                "val_events": len(self.val_sparse),
                "load_s": round(seconds, 4),
            },
            summary={
                "folder": str(ctx.data),
                "resolution": self.resolution,
                "train_events_per_rank": len(self.sparse),
                "train_events": total,
                "bytes_per_rank": self.sparse.nbytes,
                "load_s_rank": seconds,
                "input": "sparse-device",
                "resident": self.train_dense.densifier.resident,
            },
        )

    def start_warm_up(self) -> Background | None:
        """A zero minibatch through a model of the same shapes, in a thread, while the rank
        stages its data: the first step then finds cuDNN's algorithms chosen and the fused
        block compiled (both are cached per process). The model is made here, in the calling
        thread, so that the random draws of its initialisation happen before ``build`` seeds
        and makes the real one."""
        ctx, cfg = self.ctx, self.config
        if ctx.device.type != "cuda" or not cfg.warm_up or cfg.compile != "off":
            return None
        self.resolution = read_manifest(ctx.data, LARTPC).resolution
        self.check_resolution(cfg, self.resolution)
        model = self.make_model().to(ctx.device)
        bf16 = cfg.bf16 if cfg.bf16 is not None else self.bf16_on_gpus
        memory_format = torch.channels_last if self.channels_last() else torch.contiguous_format
        shape = (ctx.batch, 1, self.resolution, self.resolution)

        def warm_up() -> None:
            torch.cuda.set_device(ctx.device)
            x = torch.zeros(shape, device=ctx.device).contiguous(memory_format=memory_format)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
                out = model(x)
            out.float().sum().backward()
            torch.cuda.synchronize(ctx.device)

        return Background(warm_up, "warm-up")

    def build(self, steps_per_epoch: int) -> None:
        super().build(steps_per_epoch)
        warming = getattr(self, "warming", None)
        if warming is not None:
            error = warming.wait()
            self.warm_up_report = {"seconds": warming.seconds, "error": error}

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
        if self.channels_last():
            model = model.to(memory_format=torch.channels_last)
        return model

    def channels_last(self) -> bool:
        """Asked for, or by default on GPUs."""
        asked = self.config.channels_last
        return self.ctx.device.type == "cuda" if asked is None else asked

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
        return {
            **super().evaluate(),
            "first_block": getattr(self, "first_block", "unfused"),
            "warm_up": getattr(self, "warm_up_report", None),
        }

    def _prefetcher(self, store: Any) -> Prefetcher:
        return Prefetcher(
            store, self.ctx.batch, self.ctx.device, self.config.prefetch, self.channels_last()
        )

    def batches(self, order: Sequence[np.ndarray]) -> Iterator[DenseBatch]:
        if self.config.input == "sparse-device":
            return self.train_dense.batches(order, self.channels_last())
        if not hasattr(self, "train_prefetcher"):
            self.train_prefetcher = self._prefetcher(self.store)
        return self.train_prefetcher.batches(order)

    def val_batches(self) -> Iterator[DenseBatch]:
        if self.config.input == "sparse-device":
            order = val_order(len(self.val_sparse), self.ctx.batch)
            return self.val_dense.batches(order, self.channels_last())
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
