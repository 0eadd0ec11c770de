"""What the workloads trained on a sparse tensor data set (``data/tensors.py``: 3DGAN's showers,
CMS jet images) share, as the LArTPC classifiers share ``workloads/lartpc.py``: checking the
data set before any rank starts, staging the rank's share of both splits, the threads options,
and the default target loss of each preset.

A subclass sets ``kind`` (the data set it trains on), ``targets`` (preset → TTL target) and
checks what its evaluation needs of the validation split in ``check_val``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from hpcscale.data import tensors
from hpcscale.data.manifest import TensorManifest, read_manifest
from hpcscale.data.store import shard_indices
from hpcscale.train.workload import RankContext, Staged, Workload, WorkloadConfig
from hpcscale.workloads.threads import preimport_compiler, set_threads


class TensorConfig(WorkloadConfig):
    """Options every tensor-data workload has."""

    intra_threads: int = Field(
        0, ge=0, description="torch intra-op threads (0: OMP_NUM_THREADS, as the descriptor sets)"
    )
    inter_threads: int = Field(0, ge=0, description="torch inter-op threads (0: torch's default)")


@dataclass
class TensorSplits:
    """A rank's share of a tensor data set, as ``stage_splits`` read it."""

    manifest: TensorManifest
    train: tensors.SparseSet  # this rank's training samples
    val: tensors.SparseSet  # this rank's validation samples
    train_events: int  # training samples of all ranks (after --max-events)
    val_events: int  # validation samples of all ranks
    val_index: np.ndarray  # positions of this rank's validation samples in the split
    started: float  # perf_counter() when staging began (``staged`` times it: the DLT)


class TensorDataWorkload(Workload):
    kind: ClassVar[str]  # the data set's kind: "calo3d", "jets", …
    targets: ClassVar[dict[str, float]]  # preset → default target loss
    config: TensorConfig

    def __init__(self, config: TensorConfig, ctx: RankContext) -> None:
        super().__init__(config, ctx)
        self.default_target_loss = self.targets.get(config.model, self.default_target_loss)
        self.threads = set_threads(config.intra_threads, config.inter_threads)

    @classmethod
    def check(
        cls, config: Any, data: Path, world_size: int, batch: int, max_events: int | None = None
    ) -> int:
        manifest = read_manifest(data, cls.kind)
        assert isinstance(manifest, TensorManifest)
        manifest.check_files()
        train = cls.training_samples(data, manifest.count("train"), world_size, batch, max_events)
        cls.check_val(data, manifest.count("val"), world_size)
        return train

    @classmethod
    def check_val(cls, data: Path, val_events: int, world_size: int) -> None:
        """Refuse (``DataError``) a validation split the evaluation cannot use."""

    def stage_splits(self) -> TensorSplits:
        """Read this rank's every N-th sample of both splits into memory, sparse (while
        torch.optim's compiler stack is imported in the background)."""
        preimport_compiler()
        ctx = self.ctx
        start = time.perf_counter()
        manifest = read_manifest(ctx.data, self.kind)
        assert isinstance(manifest, TensorManifest)
        n = manifest.count("train")
        if ctx.max_events is not None:
            n = min(n, ctx.max_events)
        train = tensors.load_split(manifest, "train", shard_indices(n, ctx.rank, ctx.world_size))
        n_val = manifest.count("val")
        val_index = shard_indices(n_val, ctx.rank, ctx.world_size)
        val = tensors.load_split(manifest, "val", val_index)
        return TensorSplits(manifest, train, val, n, n_val, val_index, start)

    def staged(
        self, splits: TensorSplits, record: dict[str, Any], summary: dict[str, Any]
    ) -> Staged:
        """The ``Staged`` of ``splits``, timed until now (the data-loading time includes the
        workload's own preparation): the summary's data block has what every tensor data set
        has (folder, kind, shape, sample counts, load time), and ``summary``."""
        seconds = time.perf_counter() - splits.started
        return Staged(
            train_samples=splits.train_events,
            local_samples=len(splits.train),
            record={**record, "load_s": round(seconds, 4)},
            summary={
                "folder": str(self.ctx.data),
                "kind": self.kind,
                "shape": list(splits.manifest.shape),
                "train_events": splits.train_events,
                "train_events_per_rank": len(splits.train),
                "val_events": splits.val_events,
                **summary,
                "load_s_rank": seconds,
            },
        )
