"""A small MLP classifying points of three Gaussian blobs, made up from the seed: an hpcscale
workload that lives outside hpcscale. It stages its own data (``data_kind = "own"``), so a study
of it needs no data set; the training loop, the engines, the records and the summary are
hpcscale's."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import Field

from hpcscale.train.workload import RankContext, Staged, StepResult, Workload, WorkloadConfig

N_TRAIN, N_VAL, DIM, CLASSES = 2048, 256, 8, 3


class MLPConfig(WorkloadConfig):
    """tiny-mlp options"""

    hidden: int = Field(32, ge=1, description="hidden units")
    lr: float = Field(0.05, gt=0, description="SGD learning rate")


@dataclass
class Points:
    x: torch.Tensor
    y: torch.Tensor
    size: int
    timings: dict[str, float]


class TinyMLP(Workload):
    name = "tiny-mlp"
    Config: ClassVar[type[MLPConfig]] = MLPConfig
    data_kind = "own"  # no data set to generate: stage() makes this rank's points
    sample_unit = "points"
    default_batch = 32
    default_target_loss = 0.3
    metric_names = ("accuracy",)

    def __init__(self, config: MLPConfig, ctx: RankContext) -> None:
        super().__init__(config, ctx)
        self.config: MLPConfig = config

    def _points(self, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        centres = np.random.default_rng(7).normal(scale=2.0, size=(CLASSES, DIM))
        rng = np.random.default_rng(seed)
        y = rng.integers(0, CLASSES, size=n)
        x = centres[y] + rng.normal(size=(n, DIM))
        rows = np.arange(self.ctx.rank, n, self.ctx.world_size)  # this rank's share
        return torch.tensor(x[rows], dtype=torch.float32), torch.tensor(y[rows])

    def stage(self) -> Staged:
        self.x, self.y = self._points(N_TRAIN, 1)
        self.vx, self.vy = self._points(N_VAL, 2)
        return Staged(N_TRAIN, len(self.x), record={"points": len(self.x)}, summary={"dim": DIM})

    def build(self, steps_per_epoch: int) -> None:
        torch.manual_seed(self.ctx.seed)
        h = self.config.hidden
        self.model = torch.nn.Sequential(
            torch.nn.Linear(DIM, h), torch.nn.ReLU(), torch.nn.Linear(h, CLASSES)
        ).to(self.ctx.device)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=self.config.lr)

    def parts(self) -> dict[str, Any]:
        return {"model": self.model, "optimizer": self.optimizer}

    def parameters(self) -> Sequence[torch.Tensor]:
        return list(self.model.parameters())

    def batches(self, order: Sequence[np.ndarray]) -> Iterator[Points]:
        dev = self.ctx.device
        for idx in order:
            i = torch.as_tensor(idx)
            yield Points(self.x[i].to(dev), self.y[i].to(dev), len(idx), {})

    def step(self, batch: Points) -> StepResult:
        self.optimizer.zero_grad(set_to_none=False)
        logits = self.model(batch.x)
        loss = torch.nn.functional.cross_entropy(logits, batch.y)
        loss.backward()
        acc = (logits.argmax(1) == batch.y).float().mean()
        return StepResult(loss.detach(), {"accuracy": acc.detach()})

    def update(self) -> None:
        self.optimizer.step()

    @torch.no_grad()
    def evaluate(self) -> dict[str, Any]:
        dev = self.ctx.device
        pred = self.model(self.vx.to(dev)).argmax(1).cpu()
        sums = torch.tensor([float((pred == self.vy).sum()), float(len(self.vy))], device=dev)
        self.ctx.engine.allreduce_sum_(sums)
        return {"val_accuracy": float(sums[0] / sums[1]), "val_points": int(sums[1])}
