"""The training loop every rank runs: stage data (DLT), train until the target loss (TTL), the
epoch budget or the walltime, validate, and leave records, a status and (rank 0) the summary.

Gradients live in one flat buffer (each parameter's ``.grad`` is a view into it, as DDP's
``gradient_as_bucket_view``), so one allreduce per step averages all gradients plus the local
loss, accuracy and a stop vote: the global loss costs no extra collective, and every rank agrees
on when to stop.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import signal
import socket
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hpcscale import __version__
from hpcscale.data.simulate import CLASSES
from hpcscale.data.store import Codec, load_shard
from hpcscale.errors import UserError
from hpcscale.train import checkpoint
from hpcscale.train.batches import Prefetcher, epoch_order
from hpcscale.train.config import TrainConfig
from hpcscale.train.engine import Engine, PeerFailure, make_engine
from hpcscale.train.jobenv import JobEnvironment, detect
from hpcscale.train.mlperf import MLLog
from hpcscale.train.models import JishNet, loss_fn
from hpcscale.train.records import RecordWriter, Smoother, summarize, write_status

STATUS_GRACE_S = 10.0  # how long rank 0 waits for the other ranks' status files after a failure


class Terminated(Exception):
    """SIGTERM/SIGINT: the scheduler or the user stopped the job."""


def run(cfg: TrainConfig, t0: float) -> int:
    """One rank, start to finish; returns the process exit code."""
    jobenv = detect()
    folder = Path(cfg.out)
    rec = RecordWriter(
        folder / f"rank-{jobenv.rank}.jsonl",
        t0,
        study=cfg.study,
        site=cfg.site,
        job=cfg.job,
        rank=jobenv.rank,
        world=jobenv.world_size,
        segment=checkpoint.next_segment(folder),
    )
    mll = MLLog(folder / "mlperf.log" if jobenv.rank == 0 else None)
    mll.start("INIT_START", time_s=t0)
    _install_signal_handlers()
    checkpoint.install_usr2_handler()
    engine: Engine | None = None
    status: dict[str, Any] = {"status": "failed", "host": socket.gethostname()}
    try:
        engine = make_engine(cfg.engine, jobenv, cfg.collective_timeout, cfg.device)
        status.update(_train(cfg, jobenv, engine, rec, mll))
        status["status"] = "ok"
        write_status(folder, jobenv.rank, status)
        engine.barrier()
        return 0
    except checkpoint.Requeue:
        status.update(status="requeued", reason="checkpointed before the time limit")
        write_status(folder, jobenv.rank, status)
        with contextlib.suppress(PeerFailure):
            engine.barrier()  # type: ignore[union-attr]
        return checkpoint.REQUEUE_EXIT
    except PeerFailure as exc:
        status.update(reason=str(exc), peer_failure=True)
    except torch.cuda.OutOfMemoryError:
        status["reason"] = f"out of GPU memory on {engine.device if engine else 'cuda'}"
    except (UserError, Terminated) as exc:
        status["reason"] = str(exc)
    except Exception as exc:
        status["reason"] = f"{type(exc).__name__}: {exc}"
    finally:
        if status["status"] == "failed":
            rec.write("end", status="failed", reason=status.get("reason"))
            write_status(folder, jobenv.rank, status)
            print(f"rank {jobenv.rank}: failed: {status.get('reason')}", file=sys.stderr)
            mll.end("RUN_STOP", status="aborted")
        if jobenv.rank == 0 and status["status"] != "requeued":
            if status["status"] != "ok":
                _wait_for_statuses(folder, jobenv.world_size)
            summarize(folder, jobenv.world_size)
        rec.close()
        if engine is not None:
            engine.shutdown()
    return 1


def _train(
    cfg: TrainConfig, jobenv: JobEnvironment, engine: Engine, rec: RecordWriter, mll: MLLog
) -> dict[str, Any]:
    """Stage, build, train for this segment, then validate and report (or checkpoint)."""
    world = jobenv.world_size
    store, val_store, stats, codec = _stage(cfg, jobenv, rec, mll)
    steps_per_epoch = (stats.total_events // world) // cfg.batch
    if steps_per_epoch < 1:
        raise UserError(
            f"{stats.total_events} training events over {world} ranks give fewer than one "
            f"minibatch of {cfg.batch} per rank; generate more events"
        )
    loop = _build(cfg, engine, rec, mll, store.resolution, world, steps_per_epoch)
    mll.event("GLOBAL_BATCH_SIZE", cfg.batch * world)
    mll.event("SEED", cfg.seed)
    mll.start("RUN_START")
    epoch = _run_epochs(loop, store, cfg, jobenv.rank, steps_per_epoch)
    if loop.stop_reason == "requeue":
        if jobenv.rank == 0:
            checkpoint.save(cfg.out, loop.model, loop.optimizer, loop.schedule, loop.state())
        rec.write("segment_end", step=loop.step, reason="requeue")
        raise checkpoint.Requeue

    accuracy, confusion = _evaluate(loop.model, val_store, cfg, engine)
    mll.event("EVAL_ACCURACY", accuracy, epoch_num=epoch)
    mll.end("RUN_STOP", status="success" if loop.ttl_s is not None else "aborted")
    rec.write("end", status="ok", stop_reason=loop.stop_reason, val_accuracy=accuracy)
    return {
        "dlt_s": loop.dlt_s,
        "stop_reason": loop.stop_reason,
        "study": cfg.study,
        "site": cfg.site,
        "job": cfg.job,
        "world_size": world,
        "metrics": _metrics(loop, cfg, world, steps_per_epoch, accuracy, confusion),
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
        "data": {
            "folder": str(cfg.data),
            "resolution": store.resolution,
            "train_events_per_rank": len(store),
            "train_events": stats.total_events,
            "codec": asdict(codec),
            "compression_ratio": stats.ratio,
            "load_s_rank": stats.seconds,
        },
        "provenance": _provenance(engine, jobenv),
    }


def _stage(cfg: TrainConfig, jobenv: JobEnvironment, rec: RecordWriter, mll: MLLog) -> tuple:
    """The data-loading phase (DLT): this rank's shard, Blosc-compressed in memory."""
    codec = _codec(cfg)
    mll.end("INIT_STOP")
    mll.start("STAGING_START")
    rank, world = jobenv.rank, jobenv.world_size
    store, stats = load_shard(cfg.data, "train", rank, world, codec, limit=cfg.max_events)
    val_store, _ = load_shard(cfg.data, "val", rank, world, codec)
    mll.end("STAGING_STOP")
    rec.write(
        "phase",
        phase="staged",
        events=len(store),
        val_events=len(val_store),
        load_s=round(stats.seconds, 4),
        compression_ratio=round(stats.ratio, 1),
    )
    return store, val_store, stats, codec


def _build(
    cfg: TrainConfig,
    engine: Engine,
    rec: RecordWriter,
    mll: MLLog,
    resolution: int,
    world: int,
    steps_per_epoch: int,
) -> _Loop:
    """Model, gradient bucket and optimizer, from rank 0's weights or the job's checkpoint."""
    torch.manual_seed(cfg.seed)
    if engine.device.type == "cuda":
        # Every step has the same shapes, so let cuDNN time its algorithms once: without this,
        # its heuristic picks for a 1-channel 3600×3600 convolution made steps 10× slower on
        # an H200 (0.94 s vs 0.09 s per step of 7 images).
        torch.backends.cudnn.benchmark = True
    model = JishNet(resolution, cfg.model, softmax=cfg.loss == "paper").to(engine.device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    engine.broadcast_parameters(model)
    params = [p for p in model.parameters() if p.requires_grad]
    flat = _bucket_grads(params, extra=4, device=engine.device)
    optimizer, schedule = _optimizer(cfg, params, world, steps_per_epoch)
    loop = _Loop(cfg, engine, rec, mll, model, params, flat, optimizer, schedule)
    resumed = checkpoint.load(cfg.out, engine.device)
    if resumed is not None:
        model.load_state_dict(resumed["model"])
        optimizer.load_state_dict(resumed["optimizer"])
        if schedule is not None:
            schedule.load_state_dict(resumed["schedule"])
        loop.restore(resumed["state"])
    return loop


def _run_epochs(loop: _Loop, store: Any, cfg: TrainConfig, rank: int, steps_per_epoch: int) -> int:
    """Train until a stop reason; resumes mid-epoch after a checkpoint. Returns the epoch."""
    prefetcher = Prefetcher(store, cfg.batch, loop.engine.device, cfg.prefetch, cfg.channels_last)
    total_steps = math.ceil(cfg.epochs * steps_per_epoch)
    epoch, skip = divmod(loop.step, steps_per_epoch)
    while not loop.stop_reason:
        order = epoch_order(len(store), cfg.batch, steps_per_epoch, cfg.seed, epoch, rank)
        order = order[skip : skip + total_steps - loop.step]
        loop.mll.start("EPOCH_START", epoch_num=epoch)
        loop.epoch(prefetcher.batches(order), epoch, skip, steps_per_epoch, total_steps)
        loop.mll.end("EPOCH_STOP", epoch_num=epoch)
        epoch, skip = epoch + 1, 0
    return epoch


def _metrics(
    loop: _Loop,
    cfg: TrainConfig,
    world: int,
    steps_per_epoch: int,
    accuracy: float | None,
    confusion: np.ndarray,
) -> dict[str, Any]:
    train_s = max(loop.train_end - loop.train_start + loop.train_offset, 1e-9)
    epochs_done = loop.step / steps_per_epoch
    images = loop.step * cfg.batch * world
    return {
        "ttl_s": loop.ttl_s,
        "target_loss": cfg.target_loss,
        "ttl_window": cfg.ttl_window,
        "loss": cfg.loss,
        "steps": loop.step,
        "steps_per_epoch": steps_per_epoch,
        "segments": loop.segment + 1,
        "epochs": round(epochs_done, 4),
        "train_time_s": round(train_s, 4),
        "epoch_rate_per_min": epochs_done / (train_s / 60),
        "images_per_s": images / train_s,
        "images_per_s_per_rank": images / train_s / world,
        "global_batch": cfg.batch * world,
        "final_global_loss": loop.last_global_loss,
        "final_smoothed_loss": loop.last_smoothed,
        "val_accuracy": accuracy,
        "val_events": int(confusion.sum()),
        "confusion": confusion.tolist(),
        "confusion_percent": _percent(confusion),
        "classes": list(CLASSES),
    }


class _Loop:
    """The per-step work, with the state that TTL and stopping need."""

    def __init__(
        self,
        cfg: TrainConfig,
        engine: Engine,
        rec: RecordWriter,
        mll: MLLog,
        model: torch.nn.Module,
        params: list,
        flat: torch.Tensor,
        optimizer: torch.optim.Optimizer,
        schedule: Any,
    ) -> None:
        self.cfg, self.engine, self.rec, self.mll = cfg, engine, rec, mll
        self.model, self.params, self.flat = model, params, flat
        self.optimizer, self.schedule = optimizer, schedule
        self.smoother = Smoother(cfg.ttl_window)
        self.step = 0
        self.dlt_s: float | None = None
        self.ttl_s: float | None = None
        self.stop_reason: str | None = None
        self.last_global_loss: float | None = None
        self.last_smoothed: float | None = None
        self.train_start = self.train_end = time.perf_counter()
        self.started = False
        self.segment = 0  # walltime segments before this one (checkpoint/requeue)
        self.train_offset = 0.0  # training seconds of earlier segments
        self.wall_offset = 0.0  # wall seconds of earlier segments (process start to checkpoint)
        self.autocast = (
            torch.autocast(engine.device.type, dtype=torch.bfloat16)
            if cfg.bf16
            else contextlib.nullcontext()
        )

    def state(self) -> dict[str, Any]:
        """What the next walltime segment needs to go on exactly where this one stopped."""
        return {
            "step": self.step,
            "dlt_s": self.dlt_s,
            "ttl_s": self.ttl_s,
            "smoother": list(self.smoother.values),
            "segment": self.segment,
            "train_offset": self.train_offset + self.train_end - self.train_start,
            "wall_offset": self.total_elapsed(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.step, self.dlt_s, self.ttl_s = state["step"], state["dlt_s"], state["ttl_s"]
        self.smoother.values.extend(state["smoother"])
        self.segment = state["segment"] + 1
        self.train_offset, self.wall_offset = state["train_offset"], state["wall_offset"]
        self.rec.offset = self.wall_offset
        self.rec.write("segment_start", step=self.step, wall_offset=self.wall_offset)

    def total_elapsed(self) -> float:
        """Wall time since the first segment's process start, not counting time in the queue."""
        return self.wall_offset + self.rec.elapsed()

    def epoch(
        self, batches: Any, epoch: int, skip: int, steps_per_epoch: int, total_steps: int
    ) -> None:
        self.model.train()
        for i, batch in enumerate(batches, start=skip):
            self.step += 1
            self._one_step(batch, epoch + i / steps_per_epoch)
            self.train_end = time.perf_counter()
            if self.ttl_s is not None and self.cfg.stop_at_target:
                self.stop_reason = "target"
            elif self.step >= total_steps:
                self.stop_reason = "epochs"
            if self.stop_reason:
                return

    def _one_step(self, batch: Any, epoch: float) -> None:
        cfg, flat = self.cfg, self.flat
        t = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=False)
        with self.autocast:
            output = self.model(batch.x)
        loss = loss_fn(output, batch.y)
        loss.backward()
        correct = (output.argmax(1) == batch.y).float().mean()
        local_loss, local_acc = loss.item(), correct.item()  # synchronises the device
        compute_s = time.perf_counter() - t
        if self.dlt_s is None:
            self.dlt_s = self.rec.elapsed()  # DLT: process start → first loss reported
        if not self.started:
            self.train_start, self.started = t, True  # this segment's training phase
        self.rec.write(
            "step",
            step=self.step,
            epoch=round(epoch, 5),
            loss=local_loss,
            acc=local_acc,
            decompress_s=batch.decompress_s,
            data_wait_s=batch.wait_s,
            h2d_s=batch.h2d_s,
            compute_s=compute_s,
        )
        # One allreduce: gradients, local loss and accuracy, and the stop vote.
        wants_stop = (
            cfg.time_limit is not None and self.rec.elapsed() > cfg.time_limit - cfg.stop_margin
        )
        t = time.perf_counter()
        votes = [float(wants_stop), float(checkpoint.preempted())]
        flat[-4:] = torch.tensor([local_loss, local_acc, *votes])
        self.engine.allreduce_mean_(flat)
        global_loss, global_acc, stop_vote, requeue_vote = flat[-4:].tolist()
        allreduce_s = time.perf_counter() - t
        self.optimizer.step()
        if self.schedule is not None:
            self.schedule.step()
        smoothed = self.smoother.push(global_loss)
        self.last_global_loss, self.last_smoothed = global_loss, smoothed
        if self.ttl_s is None and smoothed is not None and smoothed < cfg.target_loss:
            self.ttl_s = self.total_elapsed()  # across walltime segments
            self.rec.write("phase", phase="target", step=self.step, ttl_s=self.ttl_s)
        self.rec.write(
            "sync",
            step=self.step,
            allreduce_s=allreduce_s,
            global_loss=global_loss,
            global_acc=global_acc,
            smoothed_loss=smoothed,
        )
        if requeue_vote > 0:
            self.stop_reason = "requeue"
        elif stop_vote > 0:
            self.stop_reason = "walltime"


def _bucket_grads(params: list, extra: int, device: torch.device) -> torch.Tensor:
    """One flat buffer; each parameter's .grad becomes a view into it (plus ``extra`` slots).
    Call after any memory-format change of the model."""
    total = sum(p.numel() for p in params)
    flat = torch.zeros(total + extra, device=device)
    offset = 0
    for p in params:
        n = p.numel()
        # Same strides as the parameter (channels_last too), as autograd's layout contract wants.
        p.grad = flat.as_strided(p.size(), p.stride(), offset)
        offset += n
    return flat


def _optimizer(cfg: TrainConfig, params: list, world: int, steps_per_epoch: int) -> tuple:
    if cfg.optimizer in ("adamw", "adam"):  # the paper's Adam: lr 1e-3, β (0.9, 0.999), ε 1e-8
        # adamw (default) decays weights decoupled from the gradient; adam adds the decay to the
        # gradient (L2), which with the paper's softmax loss (gradients ~1e-3) stops learning.
        cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        opt = cls(params, lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=cfg.weight_decay)
        return opt, None
    # SGD with Goyal et al.'s linear scaling and warm-up, then steps at epochs 30, 60, 80.
    opt = torch.optim.SGD(params, lr=cfg.lr * world, momentum=0.9, weight_decay=cfg.weight_decay)
    warm = max(cfg.warmup_epochs * steps_per_epoch, 1)

    def factor(step: int) -> float:
        epoch = step / steps_per_epoch
        adj = 1.0 / world + (1 - 1.0 / world) * min(step / warm, 1.0)
        return adj * 0.1 ** sum(epoch >= b for b in (30, 60, 80))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


@torch.no_grad()
def _evaluate(
    model: torch.nn.Module, store: Any, cfg: TrainConfig, engine: Engine
) -> tuple[float | None, np.ndarray]:
    """Validation accuracy and the 5 × 5 confusion matrix (rows true, columns predicted)."""
    model.eval()
    k = len(CLASSES)
    counts = torch.zeros(k * k, device=engine.device)
    order = [np.arange(i, min(i + cfg.batch, len(store))) for i in range(0, len(store), cfg.batch)]
    if order:
        prefetcher = Prefetcher(store, cfg.batch, engine.device, cfg.prefetch, cfg.channels_last)
        for batch in prefetcher.batches(order):
            pred = model(batch.x).argmax(1)
            counts += torch.bincount(batch.y * k + pred, minlength=k * k).float()
    engine.allreduce_sum_(counts)
    confusion = counts.view(k, k).cpu().numpy().astype(np.int64)
    total = int(confusion.sum())
    return (float(np.trace(confusion)) / total if total else None), confusion


def _percent(confusion: np.ndarray) -> list[list[float]]:
    rows = confusion.sum(axis=1, keepdims=True).clip(min=1)
    return np.round(100.0 * confusion / rows, 1).tolist()


def _codec(cfg: TrainConfig) -> Codec:
    try:
        cname, level, shuffle = cfg.codec.split(":")
        return Codec(
            cname=cname,
            clevel=int(level),
            shuffle=shuffle,  # type: ignore[arg-type]
            threads=cfg.blosc_threads,
        )
    except ValueError:
        raise UserError(
            f"--codec {cfg.codec!r}: expected codec:level:shuffle, e.g. blosclz:9:none"
        ) from None


def _provenance(engine: Engine, jobenv: JobEnvironment) -> dict[str, Any]:
    versions = engine.versions()
    return {
        "hpcscale": __version__,
        "python": platform.python_version(),
        **versions,
        "engine": engine.name,
        "launcher": jobenv.launcher,
        "job_id": jobenv.job_id,
        "nodes": list(jobenv.nodes) or [socket.gethostname()],
        "device": str(engine.device),
        "gpu": torch.cuda.get_device_name(engine.device) if engine.device.type == "cuda" else None,
        "site_digest": os.environ.get("HPCSCALE_SITE_DIGEST"),
        "image": os.environ.get("HPCSCALE_IMAGE"),
        "image_digest": os.environ.get("HPCSCALE_IMAGE_DIGEST") or _image_digest(),
    }


def _image_digest() -> str | None:
    image = os.environ.get("HPCSCALE_IMAGE")
    if not image:
        return None
    from hpcscale.containers.build import recorded_digest

    return recorded_digest(image)


def _install_signal_handlers() -> None:
    def handler(signum: int, _frame: Any) -> None:
        raise Terminated(f"stopped by {signal.Signals(signum).name}")

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)


def _wait_for_statuses(folder: Path, world: int) -> None:
    deadline = time.time() + STATUS_GRACE_S
    while time.time() < deadline:
        if all((folder / f"rank-{r}.status.json").exists() for r in range(world)):
            return
        time.sleep(0.2)
