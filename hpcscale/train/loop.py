"""The training loop every rank runs, whatever the workload: stage the data (DLT), train until
the target loss (TTL), the epoch budget or the walltime, evaluate, and leave records, a status and
(rank 0) the summary.

The workload (``train/workload.py``) brings data, model, step and evaluation; the loop brings
ranks, the one allreduce per step (gradients, local loss and metrics, and a stop vote, in one
``GradBucket``), TTL, walltime checkpoint/requeue, records and the summary.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hpcscale import workloads
from hpcscale.errors import PeerFailure, Requeue, Terminated, UserError
from hpcscale.train import checkpoint, lifecycle
from hpcscale.train.config import CoreConfig
from hpcscale.train.engine import make_engine
from hpcscale.train.engine.base import Engine
from hpcscale.train.jobenv import JobEnvironment, detect
from hpcscale.train.mlperf import MLLog
from hpcscale.train.noise import NoiseScale, estimate
from hpcscale.train.pipeline import make_workload
from hpcscale.train.placement import NodeLocalCopy, place
from hpcscale.train.records import RecordWriter, Smoother, summarize, write_status
from hpcscale.train.sync import GRAD_SQ, GradBucket
from hpcscale.train.workload import (
    Batch,
    RankContext,
    Staged,
    StepResult,
    Workload,
    WorkloadConfig,
)

STATUS_GRACE_S = 10.0  # how long rank 0 waits for the other ranks' status files after a failure
VOTES = ("stop_vote", "requeue_vote")  # the bucket's last slots


def run(core: CoreConfig, wconfig: WorkloadConfig, t0: float) -> int:
    """One rank, start to finish; returns the process exit code."""
    jobenv = detect()
    folder = Path(core.out)
    rec = RecordWriter(
        folder / f"rank-{jobenv.rank}.jsonl",
        t0,
        study=core.study,
        site=core.site,
        job=core.job,
        rank=jobenv.rank,
        world=jobenv.world_size,
        segment=checkpoint.next_segment(folder),
        host=socket.gethostname(),  # where this rank ran (a requeued segment may move)
    )
    rec.write("phase", phase="imports")  # python, torch and hpcscale imported, options parsed
    mll = MLLog(folder / "mlperf.log" if jobenv.rank == 0 else None)
    mll.start("INIT_START", time_s=t0)
    lifecycle.install_signal_handlers()
    checkpoint.install_usr2_handler()
    engine: Engine | None = None
    placed: NodeLocalCopy | None = None
    code = 1  # a failure; 2 for bad input
    status: dict[str, Any] = {"status": "failed", "host": socket.gethostname()}
    try:
        timeline = folder / "horovod-timeline.json" if core.horovod_timeline else None
        engine = make_engine(
            core.engine, jobenv, core.collective_timeout, core.device, timeline=timeline
        )
        engine.configure(core)
        if engine.device.type == "cuda":
            torch.zeros(1, device=engine.device)  # the CUDA context, counted as device start-up
        rec.write("phase", phase="device")  # device and communicator ready
        job = jobenv.job_id or f"port{jobenv.master_port}"  # a job without an id: its port
        data, placed = place(
            core.data, core.data_placement, job, jobenv.rank, jobenv.local_rank == 0, os.environ
        )
        if core.data_placement != "shared":
            rec.write("phase", phase="placed", path=str(data))  # DLT's "placement"
        spec = workloads.get(core.model)
        shard_rank, shard_ranks = engine.data_shard()
        scaling, warmup = lr_settings(core, spec, wconfig)
        ctx = RankContext(
            rank=shard_rank,
            world_size=shard_ranks,
            device=engine.device,
            engine=engine,
            data=data,
            batch=core.batch or spec.default_batch,
            seed=core.seed,
            max_events=core.max_events,
            compile_cache=folder.resolve().parent / ".compile-cache",
            lr_scaling=scaling,
            warmup_epochs=warmup,
        )
        workload = make_workload(spec, wconfig, ctx, core)  # a pipeline stage of it, or it
        status.update(_train(core, workload, jobenv, rec, mll))
        status["status"] = "ok"
        write_status(folder, jobenv.rank, status)
        engine.barrier()
        return 0
    except Requeue:
        status.update(status="requeued", reason="checkpointed before the time limit")
        write_status(folder, jobenv.rank, status)
        with contextlib.suppress(PeerFailure):
            engine.barrier()  # type: ignore[union-attr]
        return checkpoint.REQUEUE_EXIT
    except PeerFailure as exc:
        status.update(reason=str(exc), peer_failure=True)
    except torch.cuda.OutOfMemoryError:
        status["reason"] = f"out of GPU memory on {engine.device if engine else 'cuda'}"
    except Terminated as exc:
        status.update(reason=str(exc), terminated=True)
    except UserError as exc:  # bad input found late (e.g. an option the device cannot honour)
        status["reason"] = str(exc)
        code = 2
    except Exception as exc:
        status["reason"] = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()  # the whole story goes to the rank's log
    finally:
        if status["status"] == "failed":
            rec.write("end", status="failed", reason=status.get("reason"))
            write_status(folder, jobenv.rank, status)
            print(f"rank {jobenv.rank}: failed: {status.get('reason')}", file=sys.stderr)
            mll.end("RUN_STOP", status="aborted")
        if jobenv.rank == 0 and status["status"] != "requeued":
            if status["status"] != "ok":
                lifecycle.wait_for_statuses(folder, jobenv.world_size, STATUS_GRACE_S)
            summarize(folder, jobenv.world_size)
        rec.close()
        if placed is not None:
            placed.release()
        if engine is not None:
            engine.shutdown()
    return code


def _train(
    core: CoreConfig, workload: Workload, jobenv: JobEnvironment, rec: RecordWriter, mll: MLLog
) -> dict[str, Any]:
    """Stage, build, train for this segment, then evaluate and report (or checkpoint)."""
    ctx = workload.ctx
    staged = _stage(workload, rec, mll)
    steps_per_epoch = (staged.train_samples // ctx.world_size) // ctx.batch
    if steps_per_epoch < 1:
        raise UserError(
            f"{staged.train_samples} training samples over {ctx.world_size} ranks give fewer "
            f"than one minibatch of {ctx.batch} per rank; use more data or fewer ranks"
        )
    loop = Loop.build(core, workload, rec, steps_per_epoch)
    rec.write("phase", phase="built")  # models and optimizers, rank 0's weights broadcast
    mll.event("GLOBAL_BATCH_SIZE", ctx.batch * ctx.world_size)
    mll.event("SEED", core.seed)
    mll.start("RUN_START")
    epoch = ctx.engine.train(loop, mll, staged.local_samples)
    if loop.stop_reason == "requeue":
        if jobenv.rank == 0:
            checkpoint.save(core.out, workload.parts(), loop.state())
        rec.write("segment_end", step=loop.step, reason="requeue")
        raise Requeue

    evaluation = workload.evaluate() if ctx.engine.evaluates else {}
    if "val_accuracy" in evaluation:
        mll.event("EVAL_ACCURACY", evaluation["val_accuracy"], epoch_num=epoch)
    mll.end("RUN_STOP", status="success" if loop.ttl_s is not None else "aborted")
    rec.write("end", status="ok", stop_reason=loop.stop_reason, **scalars(evaluation))
    return {
        "dlt_s": loop.dlt_s,
        "stop_reason": loop.stop_reason,
        "study": core.study,
        "site": core.site,
        "job": core.job,
        "workload": workload.name,
        "model": core.model,
        "sample_unit": workload.sample_unit,
        "metrics": {**loop.metrics(), **evaluation, **ctx.engine.metrics()},
        "config": {
            **core.model_dump(mode="json"),
            "batch": ctx.batch,
            "target_loss": loop.target_loss,
            "lr_scaling": ctx.lr_scaling,  # as applied (the option, or the model's default)
            "warmup_epochs": ctx.warmup_epochs,
            **workload.config.model_dump(mode="json"),
        },
        "data": staged.summary,
        "provenance": {
            **lifecycle.provenance(ctx.engine, jobenv),
            "workload": workloads.origin(core.model),
        },
    }


def lr_settings(
    core: CoreConfig, spec: type[Workload], wconfig: WorkloadConfig
) -> tuple[str, float]:
    """The learning-rate scaling and warm-up this job applies: the core's options, else the
    model's defaults; refused for a model that applies none."""
    scaling, warmup = spec.lr_defaults(wconfig)
    scaling = core.lr_scaling if core.lr_scaling is not None else scaling
    warmup = core.warmup_epochs if core.warmup_epochs is not None else warmup
    if not spec.scales_lr and (scaling != "none" or warmup):
        raise UserError(
            f"--lr-scaling/--warmup-epochs: model {core.model} sets its own learning rate "
            "(it does not apply the core's scaling); leave them out"
        )
    return scaling, warmup


def _stage(workload: Workload, rec: RecordWriter, mll: MLLog) -> Staged:
    """The data-loading phase (DLT): the workload's share of the data for this rank."""
    mll.end("INIT_STOP")
    mll.start("STAGING_START")
    staged = workload.stage()
    mll.end("STAGING_STOP")
    rec.write("phase", phase="staged", **staged.record)
    return staged


def epoch_order(n: int, batch: int, steps: int, seed: int, epoch: int, rank: int) -> list:
    """This rank's shuffled minibatches for one epoch: ``steps`` arrays of ``batch`` indices."""
    perm = np.random.default_rng([seed, epoch, rank]).permutation(n)
    return [perm[s * batch : (s + 1) * batch] for s in range(steps)]


class Loop:
    """The per-step work, with the state that TTL, stopping and requeue need."""

    def __init__(
        self,
        core: CoreConfig,
        workload: Workload,
        rec: RecordWriter,
        steps_per_epoch: int,
        bucket: GradBucket,
    ) -> None:
        self.core, self.workload, self.rec, self.bucket = core, workload, rec, bucket
        self.ctx = workload.ctx
        self.steps_per_epoch = steps_per_epoch
        self.target_loss = (
            core.target_loss if core.target_loss is not None else workload.default_target_loss
        )
        self.smoother = Smoother(core.ttl_window)
        self.noise = NoiseScale()
        world = self.ctx.world_size
        # several ranks measure the noise scale from their own gradients: no split needed
        self.split = core.noise_split and world == 1
        self.cached: Batch | None = None  # --synthetic-data's minibatch
        self.measures_noise = world > 1 or self.split
        self.step = 0
        self.samples = 0  # samples trained on by all ranks, this and earlier segments
        self.dlt_s: float | None = None
        self.ttl_s: float | None = None
        self.ttl_step: int | None = None  # the step at which the target was reached
        self.stop_reason: str | None = None
        self.last_global: dict[str, float] = {}
        self.last_smoothed: float | None = None
        self.train_start = self.train_end = time.perf_counter()
        self.started = False
        self.segment = 0  # walltime segments before this one (checkpoint/requeue)
        self.train_offset = 0.0  # training seconds of earlier segments
        self.wall_offset = 0.0  # wall seconds of earlier segments (process start to checkpoint)

    @classmethod
    def build(
        cls, core: CoreConfig, workload: Workload, rec: RecordWriter, steps_per_epoch: int
    ) -> Loop:
        """The workload's parts from rank 0's weights or the job's checkpoint, and the bucket."""
        workload.build(steps_per_epoch)
        parts = workload.parts()
        for part in parts.values():
            if isinstance(part, torch.nn.Module):
                workload.ctx.engine.broadcast_parameters(part)
        slots = ("loss", *workload.metric_names, GRAD_SQ, *VOTES)
        bucket = GradBucket(workload.parameters(), slots, workload.ctx.device)
        loop = cls(core, workload, rec, steps_per_epoch, bucket)
        resumed = checkpoint.load(core.out, parts, workload.ctx.device)
        if resumed is not None:
            loop.restore(resumed)
        return loop

    def state(self) -> dict[str, Any]:
        """What the next walltime segment needs to go on exactly where this one stopped."""
        return {
            "step": self.step,
            "samples": self.samples,
            "dlt_s": self.dlt_s,
            "ttl_s": self.ttl_s,
            "ttl_step": self.ttl_step,
            "smoother": list(self.smoother.values),
            "noise": self.noise.state(),
            "segment": self.segment,
            "train_offset": self.train_offset + self.train_end - self.train_start,
            "wall_offset": self.total_elapsed(),
            "engine": self.ctx.engine.state(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.step, self.dlt_s, self.ttl_s = state["step"], state["dlt_s"], state["ttl_s"]
        self.ttl_step = state.get("ttl_step")
        self.samples = state["samples"]
        self.smoother.values.extend(state["smoother"])
        if "noise" in state:  # checkpoints from before the noise scale have none
            self.noise.restore(state["noise"])
        self.segment = state["segment"] + 1
        self.train_offset, self.wall_offset = state["train_offset"], state["wall_offset"]
        self.rec.offset = self.wall_offset
        self.ctx.engine.restore(state.get("engine", {}))
        self.rec.write("segment_start", step=self.step, wall_offset=self.wall_offset)

    def total_elapsed(self) -> float:
        """Wall time since the first segment's process start, not counting time in the queue."""
        return self.wall_offset + self.rec.elapsed()

    def run_epochs(self, mll: MLLog, local_samples: int) -> int:
        """Train until a stop reason; resumes mid-epoch after a checkpoint. Returns the epoch."""
        ctx, spe = self.ctx, self.steps_per_epoch
        total_steps = math.ceil(self.core.epochs * spe)
        epoch, skip = divmod(self.step, spe)
        while not self.stop_reason:
            order = epoch_order(local_samples, ctx.batch, spe, ctx.seed, epoch, ctx.rank)
            order = order[skip : skip + total_steps - self.step]
            mll.start("EPOCH_START", epoch_num=epoch)
            batches = (
                self.synthetic(order, len(order)) if self.core.synthetic_data
                else self.workload.batches(order)
            )  # fmt: skip
            for i, batch in enumerate(batches, start=skip):
                self.train_step(batch, epoch + i / spe)
                if self.ttl_s is not None and self.core.stop_at_target:
                    self.stop_reason = "target"
                elif self.step >= total_steps:
                    self.stop_reason = "epochs"
                if self.stop_reason:
                    break
            mll.end("EPOCH_STOP", epoch_num=epoch)
            epoch, skip = epoch + 1, 0
        return epoch

    def train_step(self, batch: Batch, epoch: float) -> dict[str, float]:
        """One step: the workload's forward/backward, one allreduce, its update, TTL and votes.
        Returns the global (rank-averaged) loss and metrics."""
        core, ctx = self.core, self.ctx
        self.step += 1
        t = time.perf_counter()
        out, grad_sq = self.split_step(batch) if self.split else (self.workload.step(batch), None)
        local = {"loss": float(out.loss), **{k: float(v) for k, v in out.metrics.items()}}
        compute_s = time.perf_counter() - t  # float() waited for the device
        if self.dlt_s is None:
            self.dlt_s = self.rec.elapsed()  # DLT: process start → first loss reported
            self.rec.write("phase", phase="first_step", compute_s=compute_s)
        if not self.started:
            self.train_start, self.started = t, True  # this segment's training phase
        self.rec.write(
            "step", step=self.step, epoch=round(epoch, 5), **local, **batch.timings,
            compute_s=compute_s,
        )  # fmt: skip
        wants_stop = (
            core.time_limit is not None and self.rec.elapsed() > core.time_limit - core.stop_margin
        )
        t = time.perf_counter()
        values = {**local, "stop_vote": float(wants_stop), "requeue_vote": checkpoint.preempted()}
        if grad_sq is not None:
            values[GRAD_SQ] = grad_sq
        means = ctx.engine.exchange(self.bucket, values)
        allreduce_s = time.perf_counter() - t
        noise = self.noise_fields(means[GRAD_SQ], batch.size) if self.measures_noise else {}
        if ctx.engine.local_update:  # else the engine brought the updated weights
            self.workload.update()
        if ctx.device.type == "cuda":
            torch.cuda.current_stream(ctx.device).synchronize()  # the update's own time
        self.train_end = time.perf_counter()
        update_s = self.train_end - t - allreduce_s
        self.samples += batch.size * ctx.world_size
        global_ = {k: v for k, v in means.items() if k not in VOTES and k != GRAD_SQ}
        smoothed = self.smoother.push(global_["loss"])
        self.last_global, self.last_smoothed = global_, smoothed
        if self.ttl_s is None and smoothed is not None and smoothed < self.target_loss:
            self.ttl_s = self.total_elapsed()  # across walltime segments
            self.ttl_step = self.step
            self.rec.write("phase", phase="target", step=self.step, ttl_s=self.ttl_s)
        self.rec.write(
            "sync",
            step=self.step,
            allreduce_s=allreduce_s,
            update_s=update_s,
            **{f"global_{k}": v for k, v in global_.items()},
            smoothed_loss=smoothed,
            **noise,
        )
        if means["requeue_vote"] > 0:
            # a workload that cannot resume from rank 0's checkpoint stops at its time limit
            limit = self.core.max_requeues if self.workload.checkpointable else 0
            self.stop_reason = "requeue" if limit is None or self.segment < limit else "requeues"
        elif means["stop_vote"] > 0:
            self.stop_reason = "walltime"
        return global_

    def synthetic(self, order: list, n: int) -> Iterator[Batch]:
        """``--synthetic-data``: the first minibatch of the run, made once by the workload and
        kept on the device, as each of ``n`` steps' minibatch, with its data timings zero."""
        if self.cached is None and order:
            made = self.workload.batches(order[:1])
            self.cached = next(iter(made))
            for _ in made:  # let the workload's prefetching finish and close
                pass
            with contextlib.suppress(AttributeError, TypeError):
                self.cached.timings = dict.fromkeys(self.cached.timings, 0.0)  # type: ignore[misc]
        for _ in range(n if self.cached is not None else 0):
            yield self.cached  # type: ignore[misc]

    def split_step(self, batch: Batch) -> tuple[Any, float]:
        """``--noise-split``: the step as two half-minibatch steps whose gradients are averaged
        (the same update as one step), and the mean |g|² of the halves for the noise scale."""
        first, second = self.workload.split_batch(batch)
        a = self.workload.step(first)
        kept = self.bucket.grads.clone()
        sq = self.bucket.global_sq()
        b = self.workload.step(second)
        sq = (sq + self.bucket.global_sq()) / 2
        self.bucket.grads.add_(kept).mul_(0.5)
        metrics = {k: (float(v) + float(b.metrics[k])) / 2 for k, v in a.metrics.items()}
        return StepResult((float(a.loss) + float(b.loss)) / 2, metrics), sq

    def noise_fields(self, small_sq: float, size: int) -> dict[str, float | None]:
        """The step's gradient-noise figures for its sync record: |G_b|² (mean over ranks or
        halves), |G_B|² of the averaged gradient, their unbiased estimates and B_noise."""
        b = size / 2 if self.split else size
        big_b = size if self.split else size * self.ctx.world_size
        big_sq = self.bucket.global_sq()
        est = estimate(small_sq, b, big_sq, big_b)
        return {
            "grad_sq_small": small_sq,
            "grad_sq_big": big_sq,
            "noise_b": b,
            "noise_big_b": big_b,
            "noise_g2": est.g2,
            "noise_trace": est.trace,
            "b_noise": self.noise.push(est),
        }

    def metrics(self) -> dict[str, Any]:
        """The timing figures of the summary (the workload adds its evaluation)."""
        world = self.ctx.world_size
        train_s = max(self.train_end - self.train_start + self.train_offset, 1e-9)
        epochs_done = self.step / self.steps_per_epoch
        window_full = len(self.smoother.values) == self.smoother.values.maxlen
        return {
            "ttl_s": self.ttl_s,
            "ttl_steps": self.ttl_step,
            "gradient_bytes": self.bucket.n_grads * self.bucket.flat.element_size(),
            "target_loss": self.target_loss,
            "ttl_window": self.core.ttl_window,
            "ttl_note": None if self.ttl_s is not None else self._ttl_note(window_full),
            "steps": self.step,
            "steps_per_epoch": self.steps_per_epoch,
            "segments": self.segment + 1,
            "epochs": round(epochs_done, 4),
            "train_time_s": round(train_s, 4),
            "epoch_rate_per_min": epochs_done / (train_s / 60),
            "samples_per_s": self.samples / train_s,
            "samples_per_s_per_rank": self.samples / train_s / world,
            "global_batch": self.ctx.batch * world,
            "final_global_loss": self.last_global.get("loss"),
            "final_smoothed_loss": self.last_smoothed,
            "peak_device_memory_gib": lifecycle.peak_memory_gib(self.ctx.device),
        }

    def _ttl_note(self, window_full: bool) -> str:
        """Why TTL was not reached, in words a user can act on."""
        if not window_full:
            return (
                f"the run ended after {self.step} steps, before the {self.core.ttl_window}-step "
                "smoothing window filled; train longer (--epochs) or shorten --ttl-window"
            )
        return (
            f"the smoothed loss ended at {self.last_smoothed:.3g}, above the target "
            f"{self.target_loss:g}; train longer (--epochs) or raise --target-loss"
        )


def scalars(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if isinstance(v, (int, float, str)) or v is None}
