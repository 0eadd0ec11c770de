"""A workload that exists only in the tests: linear regression on points made up from the seed.

It shares nothing with the LArTPC classifiers (no files, no images, no classes, its own metric and
evaluation), so a run of it proves that the loop, records, engines and summary need no change
for a new workload: registering its ``WorkloadSpec`` is all it takes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import Field

from hpcscale.train.workload import RankContext, Staged, StepResult, Workload, WorkloadConfig

N_TRAIN, N_VAL, DIM = 512, 64, 4


class FakeConfig(WorkloadConfig):
    """Fake regression options"""

    lr: float = Field(0.05, gt=0, description="SGD learning rate")


@dataclass
class PointBatch:
    x: torch.Tensor
    y: torch.Tensor
    size: int
    timings: dict[str, float]


class FakeRegression(Workload):
    name = "fake-linear"
    Config: ClassVar[type[FakeConfig]] = FakeConfig
    sample_unit = "points"
    default_batch = 16
    default_target_loss = 0.05
    metric_names = ("mae",)

    def __init__(self, config: FakeConfig, ctx: RankContext) -> None:
        super().__init__(config, ctx)
        self.lr = config.lr

    def _points(self, n: int, offset: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng(1234)
        w = rng.normal(size=(DIM, 1))
        x = np.random.default_rng(offset).normal(size=(n, DIM))
        rows = np.arange(self.ctx.rank, n, self.ctx.world_size)
        return torch.tensor(x[rows], dtype=torch.float32), torch.tensor(
            (x @ w)[rows], dtype=torch.float32
        )

    def stage(self) -> Staged:
        self.x, self.y = self._points(N_TRAIN, 1)
        self.vx, self.vy = self._points(N_VAL, 2)
        return Staged(N_TRAIN, len(self.x), record={"points": len(self.x)}, summary={"dim": DIM})

    def build(self, steps_per_epoch: int) -> None:
        torch.manual_seed(self.ctx.seed)
        self.model = torch.nn.Linear(DIM, 1)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=self.lr)

    def parts(self) -> dict[str, Any]:
        return {"model": self.model, "optimizer": self.optimizer}

    def parameters(self) -> Sequence[torch.Tensor]:
        return list(self.model.parameters())

    def batches(self, order: Sequence[np.ndarray]) -> Iterator[PointBatch]:
        for idx in order:
            i = torch.as_tensor(idx)
            yield PointBatch(self.x[i], self.y[i], len(idx), {"index_s": 0.0})

    def step(self, batch: PointBatch) -> StepResult:
        self.optimizer.zero_grad(set_to_none=False)
        err = self.model(batch.x) - batch.y
        loss = (err**2).mean()
        loss.backward()
        return StepResult(loss.detach(), {"mae": err.abs().mean().detach()})

    def update(self) -> None:
        self.optimizer.step()

    @torch.no_grad()
    def evaluate(self) -> dict[str, Any]:
        sums = torch.tensor([((self.model(self.vx) - self.vy) ** 2).sum(), len(self.vx)])
        self.ctx.engine.allreduce_sum_(sums)
        return {"val_mse": float(sums[0] / sums[1]), "val_points": int(sums[1])}


WORKLOAD = FakeRegression
