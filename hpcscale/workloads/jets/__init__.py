"""CMS end-to-end jet images (seed 003): top-quark vs QCD jets, 8 channels × 125 × 125, a
ResNet-style CNN, binary cross-entropy, ROC-AUC on validation.

The rank keeps its jets sparse in memory (as they are stored); each minibatch is made dense on
the step's path and timed as ``io_s``: the seed's "I/O time per batch", beside the training
time per epoch (the epoch rate). ``--input sparse-device`` (default on GPUs) scatters the
cells into the dense minibatch on the device (``hpcscale.data.scatter``: no host densifying, no
256 MB copy at batch 512); ``--input dense-host`` (default on the CPU) is the seed's path
(densified on the host, copied, the copy waited for), I/O-bound at large batches on GPUs, kept
so a study can show the difference. The batch size is the study's to vary (``--batch``; the
seed tried 64, 512 and 1024 on 2 V100: minutes per
epoch and ROC-AUC per batch size).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from hpcscale.data import tensors
from hpcscale.data.scatter import Densifier, linear_index
from hpcscale.errors import DataError
from hpcscale.train.workload import Staged, StepResult
from hpcscale.workloads.jets import roc
from hpcscale.workloads.jets.model import JetResNet
from hpcscale.workloads.jets.simulate import CLASSES, KIND
from hpcscale.workloads.schedule import fused_on, lr_schedule
from hpcscale.workloads.tensordata import TensorConfig, TensorDataWorkload

EVAL_BATCH = 256  # validation minibatch (at most): a dense batch of 1024 jets is 0.5 GB
TARGETS = {"cms-jets": 0.25, "cms-jets-small": 0.4}  # BCE; the small network on a minute's data


class JetsConfig(TensorConfig):
    """CMS jet-image options"""

    lr: float = Field(1e-3, gt=0, description="Adam learning rate")
    weight_decay: float = Field(0.0, ge=0)
    cudnn_benchmark: bool = Field(
        False,
        description="let cuDNN time its convolution algorithms at the first step of each shape "
        "(GPUs; every training step has the same shapes; not measured to pay here, and it costs "
        "seconds in the first step)",
    )
    input: Literal["auto", "sparse-device", "dense-host"] = Field(
        "auto",
        description="sparse-device: each minibatch's cells scattered into the dense images on "
        "the device; dense-host: the seed's path, densified on the host and copied (its I/O "
        "time per batch grows with the batch); auto: sparse-device on GPUs, dense-host on the "
        "CPU (where the scatter measured slower than numpy's)",
    )


@dataclass
class JetBatch:
    x: torch.Tensor  # (B, 8, 125, 125)
    y: torch.Tensor  # (B,) float 0/1
    size: int
    timings: dict[str, float]


class JetsWorkload(TensorDataWorkload):
    name = "cms-jets"
    cut_refusal = "its classifier fits one GPU many times over; data parallelism serves it"
    Config: ClassVar[type[JetsConfig]] = JetsConfig
    kind = KIND
    targets = TARGETS
    sample_unit = "images"
    default_batch = 64  # the seed's V100 batch
    default_target_loss = TARGETS["cms-jets"]
    metric_names = ("acc",)
    scales_lr = True
    figures = ("val_auc", "val_accuracy", "val_loss", "val_events", "parameters")
    config: JetsConfig

    @classmethod
    def check_val(cls, data: Path, val_events: int, world_size: int) -> None:
        if val_events < 2:
            raise DataError(f"{data}: the ROC needs at least 2 validation jets")

    def stage(self) -> Staged:
        splits = self.stage_splits()
        self.manifest, self.train, self.val = splits.manifest, splits.train, splits.val
        self.n_val, self.val_index = splits.val_events, splits.val_index
        auto = "sparse-device" if self.ctx.device.type == "cuda" else "dense-host"
        self.input = auto if self.config.input == "auto" else self.config.input
        if self.input == "sparse-device":
            self.densifiers = {
                "train": self._densifier(self.train),
                "val": self._densifier(self.val),
            }
        cells = np.diff(self.train.offsets)
        return self.staged(
            splits,
            record={"jets": len(self.train), "val_jets": len(self.val)},
            summary={
                "channels": self.manifest.meta.get("channels"),
                "nonzero_cells_mean": float(cells.mean()) if cells.size else 0.0,
                "bytes_per_rank": self.train.nbytes,
                "top_fraction": float(self.train.scalars["label"].mean())
                if splits.train_events
                else None,
                "input": self.input,
            },
        )

    def build(self, steps_per_epoch: int) -> None:
        ctx, cfg = self.ctx, self.config
        if ctx.device.type == "cuda":
            torch.backends.cudnn.benchmark = cfg.cudnn_benchmark
        torch.manual_seed(ctx.seed)
        self.model = JetResNet(cfg.model).to(ctx.device)
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
            fused=fused_on(ctx.device),
        )  # fmt: skip
        self.schedule = lr_schedule(  # the core's --lr-scaling and --warmup-epochs
            self.optimizer, ctx.lr_scaling, ctx.world_size, ctx.warmup_epochs, steps_per_epoch
        )

    def parts(self) -> dict[str, Any]:
        return {"model": self.model, "optimizer": self.optimizer, "schedule": self.schedule}

    def parameters(self) -> Sequence[torch.Tensor]:
        return list(self.model.parameters())

    def _densifier(self, store: tensors.SparseSet) -> Densifier:
        return Densifier(
            store.offsets,
            linear_index(store.index, store.shape),
            store.value,
            int(np.prod(store.shape)),
            self.ctx.device,
        )

    def _device_batches(
        self, split: str, store: tensors.SparseSet, order: Sequence[np.ndarray], size: int
    ) -> Iterator[JetBatch]:
        """Dense minibatches scattered on the device; ``io_s``: the host's time to issue it
        (the device runs the scatter in the step's stream, before the forward pass)."""
        device, densifier = self.ctx.device, self.densifiers[split]
        out = torch.zeros((size, *store.shape), device=device)
        labels = torch.from_numpy(store.scalars["label"].astype(np.float32)).to(device)
        previous = None
        for idx in order:
            t = time.perf_counter()
            previous = densifier.fill(out, idx, previous)
            y = labels[torch.as_tensor(idx).to(device, non_blocking=True)]
            yield JetBatch(out[: len(idx)], y, len(idx), {"io_s": time.perf_counter() - t})

    def _batches(
        self, store: tensors.SparseSet, order: Sequence[np.ndarray], size: int
    ) -> Iterator[JetBatch]:
        """Dense minibatches from the sparse store, the densifying and the copy timed (I/O)."""
        if self.input == "sparse-device":
            split = "train" if store is self.train else "val"
            return self._device_batches(split, store, order, size)
        return self._host_batches(store, order, size)

    def _host_batches(
        self, store: tensors.SparseSet, order: Sequence[np.ndarray], size: int
    ) -> Iterator[JetBatch]:
        """The seed's path: densified on the host, copied, the copy waited for (all in io_s)."""
        device = self.ctx.device
        host = torch.empty((size, *store.shape), pin_memory=device.type == "cuda")
        labels = torch.from_numpy(store.scalars["label"].astype(np.float32))
        for idx in order:
            t = time.perf_counter()
            store.dense_into(idx, host.numpy())
            x = host[: len(idx)].to(device, non_blocking=True)
            y = labels[torch.as_tensor(idx)].to(device, non_blocking=True)
            if device.type == "cuda":
                torch.cuda.current_stream(device).synchronize()  # the copy, in the I/O time
            yield JetBatch(x, y, len(idx), {"io_s": time.perf_counter() - t})

    def batches(self, order: Sequence[np.ndarray]) -> Iterator[JetBatch]:
        return self._batches(self.train, order, self.ctx.batch)

    def step(self, batch: JetBatch) -> StepResult:
        self.model.train()
        self.optimizer.zero_grad(set_to_none=False)
        logits = self.model(batch.x)
        loss = F.binary_cross_entropy_with_logits(logits, batch.y)
        loss.backward()
        acc = ((logits > 0).float() == batch.y).float().mean()
        return StepResult(loss.detach(), {"acc": acc.detach()})

    def update(self) -> None:
        self.optimizer.step()
        self.schedule.step()

    @torch.no_grad()
    def evaluate(self) -> dict[str, Any]:
        """ROC-AUC, the ROC curve, accuracy and loss on the whole validation set: every rank
        scores its share, one allreduce puts every score in place on every rank."""
        self.model.eval()
        size = min(self.ctx.batch, EVAL_BATCH)
        order = [np.arange(i, min(i + size, len(self.val))) for i in range(0, len(self.val), size)]
        batches = self._batches(self.val, order, size)
        scores = [self.model(b.x).float().sigmoid().cpu() for b in batches]
        local = torch.cat(scores) if scores else torch.zeros(0)
        both = torch.zeros(2, self.n_val)
        both[0, self.val_index] = local
        both[1, self.val_index] = torch.from_numpy(self.val.scalars["label"].astype(np.float32))
        flat = both.flatten().to(self.ctx.device)
        self.ctx.engine.allreduce_sum_(flat)
        p, y = flat.view(2, -1).cpu().double().numpy()
        fpr, tpr = roc.roc_curve(y, p)
        pc = np.clip(p, 1e-7, 1 - 1e-7)
        fpr_thin, tpr_thin = roc.thin(fpr, tpr)
        return {
            "val_auc": roc.roc_auc(y, p),
            "val_accuracy": float(((p > 0.5) == (y > 0.5)).mean()),
            "val_loss": float(-(y * np.log(pc) + (1 - y) * np.log(1 - pc)).mean()),
            "val_events": int(self.n_val),
            "roc": {"fpr": fpr_thin, "tpr": tpr_thin},
            "classes": list(CLASSES),
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "threads": self.threads,
            "loss": "binary cross-entropy",
            "report": REPORT,
        }


# What `hpcscale report` shows for this workload (``analysis/report.py`` reads it generically).
REPORT = {
    "loss_label": "binary cross-entropy (top vs QCD)",
    "quality": {"key": "val_auc", "label": "ROC-AUC", "format": ".3f"},
    "columns": [
        {"key": "batch", "label": "batch/rank", "format": "g"},
        {"key": "io_s", "label": "I/O per batch", "format": ".3f", "unit": " s"},
        {"key": "epoch_minutes", "label": "train min/epoch", "format": ".2f"},
    ],
    "xy": [{"key": "roc", "x": "fpr", "y": "tpr", "xlabel": "false-positive rate (QCD)",
            "ylabel": "true-positive rate (top)", "title": "ROC curve", "diagonal": True}],
    "versus": [{"x": "batch", "y": "val_auc", "xlabel": "minibatch per rank",
                "ylabel": "validation ROC-AUC", "title": "ROC-AUC vs batch size"}],
}  # fmt: skip


WORKLOAD = JetsWorkload
