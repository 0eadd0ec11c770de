"""Model parallelism (``--model-parallel K``, seed 004 section 4.3): each data-parallel rank of
the loop becomes a pipeline of K consecutive ranks on one node, one stage of the model each, and
only the activations at the stage boundaries travel.

``Pipelined`` wraps a workload and is itself a ``Workload``, so the loop stays as it is: to the
loop a pipeline is one data-parallel rank (``ctx.rank`` is the group's, ``ctx.world_size`` the
number of groups), and its one allreduce per step carries only the loss, the metrics and the
stop votes (every rank of a pipeline reports its last stage's loss, so the world's mean is the
groups' mean). Inside ``step``:

- the micro-batches run through the stages on a schedule of ``torch.distributed.pipelining``
  (``Schedule1F1B`` or ``ScheduleGPipe``; gradients scaled by the micro-batch count, so they are
  the minibatch's mean gradient);
- each stage's gradients are averaged over the data-parallel groups in the process group of
  that stage (``GroupEngine``, one flat ``GradBucket`` per stage);
- the last stage broadcasts the loss and metrics in the pipeline's process group.

Process groups: one per pipeline (ranks g·K … g·K+K−1: the point-to-point sends) and one per
stage (ranks s, s+K, …: the gradient averaging, and the workload's own collectives, such as its
evaluation's sums). The workload builds its whole model on every rank (same seed, so the same
weights); a rank trains its own stage's parameters, and before the evaluation every stage's
parameters are broadcast over its pipeline, so the workload evaluates the whole trained model.

Figures per step go into the step record (through the batch's ``timings``): the stage, its
compute (forward and backward chunks, device synchronised), the pipeline's wall time, the
bubble fraction (1 − compute / wall: time waiting for the other stages), and the activation and
gradient bytes this rank sends. ``evaluate`` gathers every rank's means and peak memory into
the summary's ``pipeline`` block.
"""

from __future__ import annotations

import resource
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.distributed as dist

from hpcscale.errors import PeerFailure, UserError
from hpcscale.train import stages
from hpcscale.train.engine.base import Engine
from hpcscale.train.sync import GradBucket
from hpcscale.train.workload import Batch, RankContext, Staged, StepResult, Workload

if TYPE_CHECKING:
    from torch.distributed.pipelining import PipelineStage

# torch.distributed.pipelining is imported where a pipeline is built: it imports torch._dynamo,
# DTensor and sympy (1.9 s of a rank's start-up here, more on a GPU host), which a rank without
# --model-parallel does not need
SCHEDULES = {"1f1b": "Schedule1F1B", "gpipe": "ScheduleGPipe"}  # torch.distributed.pipelining
# a step's figures the summary averages per stage (over its steady steps and its groups)
MEANS = (
    "stage_compute_s", "pipeline_s", "bubble_fraction", "activation_bytes", "gradient_bytes",
    "stage_allreduce_s",
)  # fmt: skip
DEVICE_KEYS = ("rank", "stage", "group", "host", "device", "peak_memory_gib", "peak_rss_gib")


def make_workload(spec: type[Workload], config: Any, ctx: RankContext, core: Any) -> Workload:
    """The workload of this rank: ``spec`` itself, or its pipeline stage under
    ``--model-parallel`` (``core`` is the rank's ``CoreConfig``)."""
    if core.model_parallel == 1:
        return spec(config, ctx)
    return Pipelined(spec, config, ctx, core)


class GroupEngine(Engine):
    """The engine's collectives within one process group (a stage's data-parallel ranks)."""

    def __init__(self, world: Engine, group: Any, ranks: list[int]) -> None:
        self.world, self.group, self.ranks = world, group, ranks
        self.rank, self.world_size = ranks.index(world.rank), len(ranks)
        self.local_rank, self.device, self.name = world.local_rank, world.device, world.name

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> None:
        if self.world_size == 1:
            return
        try:
            fn(*args, group=self.group, **kwargs)
        except (RuntimeError, dist.DistBackendError) as exc:  # Gloo/NCCL peer loss, timeouts
            raise PeerFailure(
                f"collective {fn.__name__} failed: {str(exc).splitlines()[0]}"
            ) from exc

    def broadcast_parameters(self, module: torch.nn.Module) -> None:
        with torch.no_grad():
            for tensor in list(module.parameters()) + list(module.buffers()):
                self._call(dist.broadcast, tensor, src=self.ranks[0])

    def allreduce_mean_(self, flat: torch.Tensor) -> None:
        self._call(dist.all_reduce, flat, op=dist.ReduceOp.SUM)
        flat.div_(self.world_size)

    def allreduce_sum_(self, flat: torch.Tensor) -> None:
        self._call(dist.all_reduce, flat, op=dist.ReduceOp.SUM)

    def barrier(self) -> None:
        self._call(dist.barrier)

    def shutdown(self) -> None:  # the world engine ends the process groups
        pass

    def versions(self) -> dict[str, str | None]:
        return self.world.versions()


def groups(world: int, k: int, rank: int) -> tuple[Any, list[int], Any, list[int]]:
    """(pipeline group, its ranks, stage group, its ranks) of ``rank``: every rank creates every
    group, in the same order, as ``new_group`` asks."""
    pipelines = [list(range(g * k, g * k + k)) for g in range(world // k)]
    by_stage = [list(range(s, world, k)) for s in range(k)]
    made = {}
    for ranks in pipelines + by_stage:
        group = dist.new_group(ranks)
        if rank in ranks:
            made[tuple(ranks)] = group
    pp = pipelines[rank // k]
    dp = by_stage[rank % k]
    return made[tuple(pp)], pp, made[tuple(dp)], dp


class Pipelined(Workload):
    """One stage of ``spec``'s model on this rank, as a workload of the loop."""

    # Rank 0 holds its own stage's trained weights and optimizer state only: a walltime
    # checkpoint would resume the other stages from stale weights, so the job stops instead.
    checkpointable = False

    def __init__(self, spec: type[Workload], config: Any, ctx: RankContext, core: Any) -> None:
        k = core.model_parallel
        if ctx.world_size % k:
            raise UserError(
                f"--model-parallel {k} needs a number of ranks that {k} divides "
                f"(this job has {ctx.world_size})"
            )
        self.k, self.index = k, ctx.rank % k
        self.world_rank, self.dp_size = ctx.rank, ctx.world_size // k
        self.pp_group, self.pp_ranks, self.dp_group, dp_ranks = groups(ctx.world_size, k, ctx.rank)
        self.stage_engine = GroupEngine(ctx.engine, self.dp_group, dp_ranks)
        group_ctx = replace(ctx, rank=ctx.rank // k, world_size=self.dp_size)
        self.inner = spec(config, replace(group_ctx, engine=self.stage_engine))
        super().__init__(config, group_ctx)  # the loop's: the world engine, the group's shard
        self.name, self.Config = self.inner.name, self.inner.Config  # type: ignore[misc]
        self.sample_unit, self.default_batch = self.inner.sample_unit, self.inner.default_batch
        self.default_target_loss = self.inner.default_target_loss
        self.metric_names = self.inner.metric_names
        self.cuts = stages.cuts(core.model, spec, k, core.stage_cuts)
        self.n_micro = stages.micro_batches(
            ctx.batch, k, core.micro_batches, core.pipeline_schedule
        )
        self.schedule_name = core.pipeline_schedule
        self.sums: dict[str, float] = {}  # per-step figures summed over the steady steps
        self.steady_steps = 0
        self.steps = 0

    @property
    def first(self) -> bool:
        return self.index == 0

    @property
    def last(self) -> bool:
        return self.index == self.k - 1

    def stage(self) -> Staged:
        self._check_one_node()
        return self.inner.stage()

    def _check_one_node(self) -> None:
        hosts: list[Any] = [None] * self.k
        dist.all_gather_object(hosts, socket.gethostname(), group=self.pp_group)
        if len(set(hosts)) > 1:
            raise UserError(
                f"--model-parallel {self.k}: the pipeline of ranks {self.pp_ranks[0]}-"
                f"{self.pp_ranks[-1]} runs on {', '.join(sorted(set(hosts)))}; the launcher must "
                "place consecutive ranks on one node"
            )

    def build(self, steps_per_epoch: int) -> None:
        self.inner.build(steps_per_epoch)
        self.split = self.inner.split(self.cuts)
        self.module = self.split.stages[self.index]
        device = self.ctx.device
        self.params = [p for p in self.module.parameters() if p.requires_grad]
        self.bucket = GradBucket(self.params, (), device)
        from torch.distributed import pipelining

        stage = pipelining.PipelineStage(
            self.module, self.index, self.k, device, group=self.pp_group
        )
        self.pipe_stage = stage
        # every stage gets the loss: a schedule without one runs forward only
        schedule = getattr(pipelining, SCHEDULES[self.schedule_name])
        self.schedule = schedule(stage, self.n_micro, loss_fn=self.split.loss)
        self._instrument(stage)

    def _instrument(self, stage: PipelineStage) -> None:
        """Time the stage's compute chunks and count the bytes it sends (public methods of the
        stage, wrapped on this instance; the schedule's waits for its peers stay outside)."""
        self.compute_s, self.sent = 0.0, {"activation": 0, "gradient": 0}
        for name in ("forward_one_chunk", "backward_one_chunk"):
            setattr(stage, name, self._timed(getattr(stage, name)))

        def count(_module: Any, args: tuple, output: Any) -> None:
            if not self.last:
                self.sent["activation"] += _nbytes(output)
            if not self.first and torch.is_grad_enabled():
                self.sent["gradient"] += _nbytes(args)  # its gradient goes back, same shape

        self.module.register_forward_hook(count)

    def _timed(self, fn: Any) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            out = fn(*args, **kwargs)
            if self.ctx.device.type == "cuda":
                torch.cuda.current_stream(self.ctx.device).synchronize()
            self.compute_s += time.perf_counter() - t
            return out

        return timed

    def parts(self) -> dict[str, Any]:
        return self.inner.parts()

    def parameters(self) -> Sequence[torch.Tensor]:
        return ()  # the stage averages its own gradients in its stage's group (``step``)

    def batches(self, order: Sequence[np.ndarray]) -> Iterator[Batch]:
        return self.inner.batches(order)

    def step(self, batch: Batch) -> StepResult:
        self.module.train()
        self.bucket.flat.zero_()
        self.compute_s, self.sent = 0.0, {"activation": 0, "gradient": 0}
        t = time.perf_counter()
        losses: list[torch.Tensor] = []
        if self.first:
            self.schedule.step(self.split.inputs(batch))
        elif self.last:
            target = self.split.target(batch)
            output = self.schedule.step(target=target, losses=losses)
        else:
            self.schedule.step()
        if self.ctx.device.type == "cuda":
            torch.cuda.current_stream(self.ctx.device).synchronize()
        pipeline_s = time.perf_counter() - t
        t = time.perf_counter()
        self.stage_engine.allreduce_mean_(self.bucket.flat)
        grad_allreduce_s = time.perf_counter() - t
        # the last stage's loss and metrics, for every rank of the pipeline
        values = torch.zeros(1 + len(self.metric_names), device=self.ctx.device)
        if self.last:
            metrics = self.split.metrics(output, target)
            with torch.no_grad():
                values[0] = torch.stack([x.detach().float() for x in losses]).mean()
                for i, name in enumerate(self.metric_names, start=1):
                    values[i] = metrics[name].detach().float()
        dist.broadcast(values, src=self.pp_ranks[-1], group=self.pp_group)
        figures = {
            "stage": self.index,
            "stage_compute_s": self.compute_s,
            "pipeline_s": pipeline_s,
            "bubble_fraction": max(0.0, 1.0 - self.compute_s / max(pipeline_s, 1e-12)),
            "activation_bytes": self.sent["activation"],
            "gradient_bytes": self.sent["gradient"],
            "stage_allreduce_s": grad_allreduce_s,
        }
        batch.timings.update(figures)  # into the step record, beside the batch's own timings
        self._accumulate(figures)
        loss, *rest = values.tolist()
        return StepResult(loss, dict(zip(self.metric_names, rest, strict=True)))

    def _accumulate(self, figures: dict[str, float]) -> None:
        self.steps += 1
        if self.steps == 1:
            return  # the first step infers the stages' shapes and warms up: left out
        self.steady_steps += 1
        for key, value in figures.items():
            if key != "stage":
                self.sums[key] = self.sums.get(key, 0.0) + value

    def update(self) -> None:
        self.inner.update()

    def evaluate(self) -> dict[str, Any]:
        self._gather_stages()
        evaluation = self.inner.evaluate()
        return {**evaluation, "pipeline": self._summary()}

    def _gather_stages(self) -> None:
        """Every stage's trained parameters to every rank of the pipeline (the whole model)."""
        with torch.no_grad():
            for owner, module in zip(self.pp_ranks, self.split.stages, strict=True):
                for tensor in list(module.parameters()) + list(module.buffers()):
                    dist.broadcast(tensor, src=owner, group=self.pp_group)

    def _summary(self) -> dict[str, Any]:
        """The summary's ``pipeline`` block: every rank's means and peak memory, per stage."""
        n = max(self.steady_steps, 1)
        mine = {
            "rank": self.world_rank,
            "stage": self.index,
            "group": self.ctx.rank,
            "host": socket.gethostname(),
            "device": str(self.ctx.device),
            "parameters": sum(p.numel() for p in self.params),
            **{k: v / n for k, v in self.sums.items()},
            "peak_memory_gib": _peak_memory_gib(self.ctx.device),
            "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
        }
        ranks: list[Any] = [None] * (self.k * self.dp_size)
        dist.all_gather_object(ranks, mine)
        per_stage = []
        for s in range(self.k):
            rows = [r for r in ranks if r["stage"] == s]
            per_stage.append(
                {
                    "stage": s,
                    "parts": list(getattr(self.split.stages[s], "parts", ())),
                    "parameters": rows[0]["parameters"],
                    **{key: sum(r.get(key, 0.0) for r in rows) / len(rows) for key in MEANS},
                    "peak_memory_gib": _max(r["peak_memory_gib"] for r in rows),
                    "peak_rss_gib": _max(r["peak_rss_gib"] for r in rows),
                }
            )
        return {
            "stages": self.k,
            "groups": self.dp_size,
            "devices": self.k * self.dp_size,
            "schedule": self.schedule_name,
            "micro_batches": self.n_micro,
            "cuts": list(self.cuts),
            "steady_steps": self.steady_steps,
            "bubble_fraction": sum(s["bubble_fraction"] for s in per_stage) / self.k,
            "activation_bytes_per_step": sum(s["activation_bytes"] for s in per_stage),
            "gradient_bytes_per_step": sum(s["gradient_bytes"] for s in per_stage),
            "per_stage": per_stage,
            "per_device": [{k: r[k] for k in DEVICE_KEYS} for r in ranks],
        }


def _nbytes(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, (tuple, list)):
        return sum(_nbytes(v) for v in value)
    return 0


def _max(values: Iterator[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def _peak_memory_gib(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 3)
