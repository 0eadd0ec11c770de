"""What the paper's two networks share: five-class LArTPC event classification.

JishNet (dense) and SCNet (sparse) differ in their data path and model; their loss, optimizer,
step, evaluation (accuracy and confusion matrix) and metrics are the same, and live here. A
subclass brings ``stage``, ``batches``, ``val_batches``, ``make_model`` and ``forward``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from hpcscale.data import files
from hpcscale.data.manifest import LARTPC, read_manifest
from hpcscale.data.simulate import CLASSES
from hpcscale.errors import UserError
from hpcscale.train.workload import Batch, StepResult, Workload, WorkloadConfig
from hpcscale.workloads.schedule import fused_on, lr_schedule


class ClassifierConfig(WorkloadConfig):
    """LArTPC classifier options"""

    loss: Literal["paper", "standard"] = Field(
        "paper",
        description="paper: cross-entropy on the softmax output (the paper's curves; floor "
        "0.905); standard: cross-entropy on logits",
    )
    optimizer: Literal["adamw", "adam", "sgd"] = Field(
        "adamw",
        description="adamw (default): Adam with decoupled weight decay; adam: weight decay as L2 "
        "in the gradient (torch.optim.Adam); sgd: momentum 0.9, steps at epochs 30, 60, 80, and "
        "by default Goyal et al.'s linear scaling with 5 warm-up epochs (--lr-scaling)",
    )
    lr: float = Field(1e-3, gt=0, description="learning rate of one rank (see --lr-scaling)")
    weight_decay: float = Field(0.01, ge=0)
    bf16: bool | None = Field(
        None,
        description="bfloat16 autocast for the forward pass; default: the model's (JishNet: on "
        "GPUs, where it measured the same accuracy and 20 %% faster H100 steps; SCNet: off)",
    )
    compile: Literal["off", "default", "reduce-overhead", "max-autotune"] = Field(
        "off",
        description="torch.compile the model with this mode (reduce-overhead adds CUDA graphs); "
        "the first step compiles, later jobs of a study reuse the cache beside their folders",
    )


def loss_fn(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the network's output. With ``--loss paper`` the output is already a
    softmax, so this is cross-entropy on probabilities, as the paper's loss curves imply."""
    return F.cross_entropy(output.float(), target)


def make_optimizer(
    config: ClassifierConfig, params: list, ctx: Any, steps_per_epoch: int
) -> tuple[torch.optim.Optimizer, Any]:
    """The optimizer at the one-rank learning rate, and the core's lr scaling as its schedule."""
    if config.optimizer in ("adamw", "adam"):  # the paper's Adam: lr 1e-3, β (0.9, 0.999), ε 1e-8
        # adamw (default) decays weights decoupled from the gradient; adam adds the decay to the
        # gradient (L2), which with the paper's softmax loss (gradients ~1e-3) stops learning.
        cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
        opt = cls(
            params, lr=config.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=config.weight_decay,
            fused=fused_on(ctx.device),
        )  # fmt: skip
        milestones: tuple[int, ...] = ()
    else:  # SGD, with steps at epochs 30, 60, 80 (the paper's helper)
        opt = torch.optim.SGD(params, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)
        milestones = (30, 60, 80)
    if ctx.lr_scaling == "none" and not milestones:
        return opt, None  # a constant rate: no schedule (checkpoints as before)
    schedule = lr_schedule(
        opt, ctx.lr_scaling, ctx.world_size, ctx.warmup_epochs, steps_per_epoch, milestones
    )
    return opt, schedule


class LArTPCClassifier(Workload):
    """The shared part of JishNet and SCNet."""

    Config: ClassVar[type[ClassifierConfig]] = ClassifierConfig
    sample_unit = "images"
    default_batch = 7  # the paper's: fits a 16 GB P100 at 3600 × 3600
    default_target_loss = 1.2  # the paper's TTL target
    metric_names = ("acc",)
    figures = ("val_accuracy", "val_events")
    bf16_on_gpus: ClassVar[bool] = False  # --bf16's default on a GPU (measured per model)
    scales_lr = True

    @classmethod
    def lr_defaults(cls, config: Any) -> tuple[str, float]:
        """SGD: Goyal et al.'s linear scaling over 5 warm-up epochs; Adam(W): the rate as given."""
        return ("linear", 5.0) if config.optimizer == "sgd" else ("none", 0.0)

    config: ClassifierConfig
    model: torch.nn.Module
    net: Any  # the model, or its torch.compile wrapper
    resolution: int

    # -- what a subclass brings -----------------------------------------------------------------
    @classmethod
    def check_resolution(cls, config: ClassifierConfig, resolution: int) -> None:
        """Raise ``UserError`` if the model cannot take images of this side."""

    def make_model(self) -> torch.nn.Module:
        raise NotImplementedError

    def forward(self, net: torch.nn.Module, batch: Any) -> torch.Tensor:
        """``net`` applied to the batch: the compiled model in training, the eager one in
        evaluation (whose last, shorter minibatch would make torch.compile compile again)."""
        raise NotImplementedError

    def val_batches(self) -> Iterator[Any]:
        raise NotImplementedError

    # -- the shared part ------------------------------------------------------------------------
    @classmethod
    def check(
        cls,
        config: Any,
        data: Path,
        world_size: int,
        batch: int,
        max_events: int | None = None,
    ) -> int:
        manifest = read_manifest(data, LARTPC)  # names the file and what is wrong with it
        manifest.check_files()
        try:
            cls.check_resolution(config, manifest.resolution)
        except UserError as exc:  # the message names the data set it is about
            raise UserError(f"{data}: {exc}") from None
        files.check_shards(manifest)
        train = cls.training_samples(data, manifest.count("train"), world_size, batch, max_events)
        return train

    def build(self, steps_per_epoch: int) -> None:
        ctx = self.ctx
        torch.manual_seed(ctx.seed)
        self.model = self.make_model().to(ctx.device)
        if self.config.compile != "off" and ctx.compile_cache is not None:
            os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(ctx.compile_cache))
        if self.config.compile != "off" and hasattr(self.model, "before_compile"):
            self.model.before_compile()  # parts a model keeps out of the compiled graph
        self.net = (
            self.model
            if self.config.compile == "off"
            else torch.compile(self.model, mode=self.config.compile)
        )  # the same parameters: checkpoints and the broadcast see self.model
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer, self.schedule = make_optimizer(
            self.config, self.params, ctx, steps_per_epoch
        )
        bf16 = self.config.bf16
        if bf16 is None:
            bf16 = self.bf16_on_gpus and ctx.device.type == "cuda"
        self.precision = "bf16" if bf16 else "fp32"
        self.autocast = (
            torch.autocast(ctx.device.type, dtype=torch.bfloat16)
            if bf16
            else contextlib.nullcontext()
        )

    def parts(self) -> dict[str, Any]:
        parts: dict[str, Any] = {"model": self.model, "optimizer": self.optimizer}
        if self.schedule is not None:
            parts["schedule"] = self.schedule
        return parts

    def parameters(self) -> Sequence[torch.Tensor]:
        return self.params

    def step(self, batch: Batch) -> StepResult:
        self.model.train()
        self.optimizer.zero_grad(set_to_none=False)  # the gradients are views of the bucket
        with self.autocast:
            output = self.forward(self.net, batch)
        y = batch.y  # type: ignore[attr-defined]
        loss = loss_fn(output, y)
        loss.backward()
        correct = (output.argmax(1) == y).float().mean()
        return StepResult(loss.detach(), {"acc": correct})

    def update(self) -> None:
        self.optimizer.step()
        if self.schedule is not None:
            self.schedule.step()

    @torch.no_grad()
    def evaluate(self) -> dict[str, Any]:
        """Validation accuracy and the 5 × 5 confusion matrix (rows true, columns predicted)."""
        self.model.eval()
        k = len(CLASSES)
        counts = torch.zeros(k * k, device=self.ctx.device)
        for batch in self.val_batches():
            with self.autocast:
                pred = self.forward(self.model, batch).argmax(1)
            counts += torch.bincount(batch.y * k + pred, minlength=k * k).float()
        self.ctx.engine.allreduce_sum_(counts)
        confusion = counts.view(k, k).cpu().numpy().astype(np.int64)
        total = int(confusion.sum())
        rows = confusion.sum(axis=1, keepdims=True).clip(min=1)
        return {
            "val_accuracy": float(np.trace(confusion)) / total if total else None,
            "val_events": total,
            "confusion": confusion.tolist(),
            "confusion_percent": np.round(100.0 * confusion / rows, 1).tolist(),
            "classes": list(CLASSES),
            "loss": self.config.loss,
            "precision": self.precision,
        }


def val_order(n: int, batch: int) -> list[np.ndarray]:
    """The validation set in order, in minibatches (the last may be short)."""
    return [np.arange(i, min(i + batch, n)) for i in range(0, n, batch)]


def too_small(model: str, minimum: int, resolution: int) -> UserError:
    return UserError(
        f"events are {resolution}×{resolution}, but {model} needs images of at least "
        f"{minimum}×{minimum} (its four poolings shrink the side 400-fold); generate events "
        f"with --resolution {minimum} or more"
    )
