"""Master/worker engine (seed 004's mpi-learn): rank 0 is the master, which holds the model and
its optimizer, applies updates and serves weights; ranks 1… are workers, in groups of
``--group-size`` ranks that average their batch's gradient among themselves (a sub-communicator,
seed 004's batch parallelism) before the group's leader talks to the master. Point to point over
torch.distributed: Gloo on CPUs, NCCL on GPUs.

The rules (``mw_rules``): downpour (the master applies each gradient as it arrives, refusing one
staler than ``--max-staleness``), EASGD (workers train local models that meet the master's
centre every ``--easgd-period`` steps) and GEM (each worker sends the step its own optimizer
makes, scaled so that all workers together move the model no more than one momentum process
would; the master adds it).

How the loop runs on it. A worker runs the loop's epochs as any rank; its one exchange per step
(``exchange``) is the group's allreduce and the leader's message to the master, whose reply
brings the weights (downpour: the loop then applies no update of its own) and the master's
verdict (go on, stop, requeue). The master runs ``serve`` instead of the loop's epochs: one
thread per worker receives its messages (so a dead worker is noticed at once and named), the main
thread applies them one at a time and sends the replies, and keeps the loop's bookkeeping (TTL
on the arriving losses, records, the summary's figures). The workload sees ``data_shard``: each
worker rank one share of the data; the master all of it (world 1: its optimizer's learning rate
is a single worker's, as each update is one worker's batch) and it alone evaluates, on the whole
validation set. A workload's own collectives (the GAN's discriminator) run within the worker's
group: what is not in ``parameters()`` (the GAN's discriminator) is each worker group's own.

Faults: a worker that dies is named with the time and step (``lost_workers``) and the master
goes on with the rest; the master's death fails every worker's next exchange (peer failure).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist

from hpcscale.errors import PeerFailure
from hpcscale.train import checkpoint
from hpcscale.train.engine import mw_rules as mw
from hpcscale.train.engine import mw_shape
from hpcscale.train.engine.base import Engine, pick_device
from hpcscale.train.jobenv import JobEnvironment

if TYPE_CHECKING:
    from hpcscale.train.config import CoreConfig
    from hpcscale.train.loop import Loop
    from hpcscale.train.mlperf import MLLog
    from hpcscale.train.sync import GradBucket


class MasterWorkerEngine(Engine):
    name = "master-worker"

    def __init__(self, jobenv: JobEnvironment, timeout_s: float, device: str) -> None:
        self.rank, self.world_size, self.local_rank = (
            jobenv.rank,
            jobenv.world_size,
            jobenv.local_rank,
        )
        if self.world_size < 2:  # before any communicator: one rank has no master to wait for
            mw_shape.check(SimpleNamespace(engine="master-worker", group_size=1), 1)
        self.device = pick_device(jobenv.local_rank, device)
        os.environ.setdefault("MASTER_ADDR", jobenv.master_addr)
        os.environ.setdefault("MASTER_PORT", str(jobenv.master_port))
        # NCCL wants one GPU per rank; ranks sharing a GPU (more per node than GPUs: the
        # bookkeeping runs of one GPU) talk through Gloo, staging messages in host memory.
        per_node = int(
            os.environ.get("LOCAL_WORLD_SIZE") or os.environ.get("HPCSCALE_RANKS_PER_NODE") or 1
        )
        cuda = self.device.type == "cuda"
        shared = cuda and per_node > torch.cuda.device_count()
        self.backend = os.environ.get("HPCSCALE_MW_BACKEND") or (
            "nccl" if cuda and not shared else "gloo"
        )
        self.comm = self.device if self.backend == "nccl" else torch.device("cpu")
        os.environ.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1")
        kwargs = {"device_id": self.device} if self.backend == "nccl" else {}
        dist.init_process_group(
            self.backend,
            init_method="env://",
            rank=self.rank,
            world_size=self.world_size,
            timeout=datetime.timedelta(seconds=timeout_s),
            **kwargs,
        )
        self.evaluates = self.rank == 0
        self.local_update = False
        self.resumed: dict[str, Any] = {}
        self.stats: dict[str, Any] = {}

    # -- set-up ---------------------------------------------------------------------------------
    def configure(self, core: CoreConfig) -> None:
        mw_shape.check(core, self.world_size)
        size, workers = core.group_size, self.world_size - 1
        self.core = core
        self.rule, self.size = core.update_rule, size
        self.local_update = self.rule == "easgd"
        self.ledger = mw.Ledger(core.max_staleness)
        self.gem = mw.Gem(core.gem_kappa, core.gem_momentum) if self.rule == "gem" else None
        self.members = [
            list(range(1 + g * size, 1 + (g + 1) * size)) for g in range(workers // size)
        ]
        # every rank makes every group, in the same order (torch.distributed's rule)
        self.pairs = [dist.new_group([0, m[0]]) for m in self.members]
        self.teams = [dist.new_group(m) for m in self.members] if size > 1 else []
        self.group = None if self.rank == 0 else (self.rank - 1) // size
        self.leader = self.group is not None and self.rank == self.members[self.group][0]
        self.version, self.wait_s, self.stopped_by_master = 0, 0.0, False

    def data_shard(self) -> tuple[int, int]:
        return (0, 1) if self.rank == 0 else (self.rank - 1, self.world_size - 1)

    # -- collectives a workload may call (in its worker group; the master alone) ----------------
    def broadcast_parameters(self, module: torch.nn.Module) -> None:
        with torch.no_grad():
            for tensor in list(module.parameters()) + list(module.buffers()):
                self._staged(dist.broadcast, tensor, src=0)

    def allreduce_mean_(self, flat: torch.Tensor) -> None:
        if self.teams and self.group is not None:
            self._staged(dist.all_reduce, flat, group=self.teams[self.group])
            flat.div_(self.size)

    def allreduce_sum_(self, flat: torch.Tensor) -> None:
        if self.teams and self.group is not None:
            self._staged(dist.all_reduce, flat, group=self.teams[self.group])

    def barrier(self) -> None:
        """Every live rank has written its status: teams meet, leaders tell the master."""
        token = torch.zeros(1, device=self.comm)
        if self.rank == 0:
            for g, m in enumerate(self.members):
                if g in self.stats.get("lost", {}):
                    continue
                with contextlib.suppress(RuntimeError, dist.DistBackendError):
                    dist.recv(token, src=m[0], group=self.pairs[g])
            return
        if self.teams:
            self._call(dist.barrier, group=self.teams[self.group])
        if self.leader:
            self._call(dist.send, token, dst=0, group=self.pairs[self.group])

    def shutdown(self) -> None:
        if dist.is_initialized():
            with contextlib.suppress(Exception):  # a broken group cannot always be torn down
                dist.destroy_process_group()

    # -- a worker's step --------------------------------------------------------------------------
    def exchange(self, bucket: GradBucket, values: Mapping[str, float]) -> dict[str, float]:
        means = bucket.allreduce_mean(self, values)  # the group's average (alone: as is)
        loop = self.loop
        if self.rule == "easgd" and loop.step % self.core.easgd_period:
            return means
        n = bucket.n_grads
        reply = torch.zeros(mw.REPLY_HEAD + n, device=self.comm)
        if self.gem is not None:
            gem_update, pi_mean = self._gem_update(loop)
        t = time.perf_counter()
        if self.leader:
            head = torch.zeros(mw.HEAD, device=self.device)
            head[mw.KIND] = {"downpour": mw.GRADIENT, "easgd": mw.PARAMS, "gem": mw.UPDATE}[
                self.rule
            ]
            head[mw.VERSION], head[mw.STEP] = self.version, loop.step
            period = self.core.easgd_period if self.rule == "easgd" else 1
            head[mw.SAMPLES] = loop.ctx.batch * self.size * period
            head[mw.WAIT_S] = self.wait_s
            head[mw.STOP_VOTE], head[mw.REQUEUE_VOTE] = means["stop_vote"], means["requeue_vote"]
            if self.rule == "easgd":
                self._gather_weights(self.weights)
                payload = self.weights
            elif self.gem is not None:
                payload = gem_update
            else:
                payload = bucket.grads
            msg = torch.cat([head, payload, bucket.flat[n:]]).to(self.comm)
            self._call(dist.send, msg, dst=0, group=self.pairs[self.group])
            self._call(dist.recv, reply, src=0, group=self.pairs[self.group])
        if self.teams:
            leader = self.members[self.group][0]
            self._call(dist.broadcast, reply, src=leader, group=self.teams[self.group])
        wait = time.perf_counter() - t
        self.wait_s += wait
        head, weights = reply[: mw.REPLY_HEAD].tolist(), reply[mw.REPLY_HEAD :].to(self.device)
        self.version = int(head[mw.R_VERSION])
        with torch.no_grad():
            if self.rule == "easgd":
                self._gather_weights(self.weights)
                mw.elastic_pull_(self.weights, weights, self.core.easgd_alpha)
                self._scatter_weights(self.weights)
            else:
                self._scatter_weights(weights)
                if self.gem is not None:
                    self.centre_before, self.centre = self.centre, weights
        code = int(head[mw.R_CODE])
        gem = {"gem_pi_mean": pi_mean} if self.gem is not None else {}
        loop.rec.write(
            "pull", step=loop.step, version=self.version, applied=bool(head[mw.R_APPLIED]),
            staleness=int(head[mw.R_STALENESS]), weights_wait_s=wait, **gem,
        )  # fmt: skip
        self.stopped_by_master = code != mw.GO
        return {
            **means,
            "stop_vote": float(code == mw.STOP),
            "requeue_vote": float(code == mw.REQUEUE),
        }

    def _gem_update(self, loop: Loop) -> tuple[torch.Tensor, float]:
        """GEM's update to send (``mw_rules``): the step the workload's own optimizer makes from
        this gradient, scaled by π; the model is left as it was (the master's reply replaces
        it). Also π's mean, for the record."""
        assert self.gem is not None
        loop.workload.update()  # from the centre last pulled, which the parameters hold
        self._gather_weights(self.weights)
        delta = self.weights - self.centre
        pi = self.gem.scale(delta, self.centre - self.centre_before)
        return delta.mul_(pi), float(pi.mean())

    def _views(self, params: Sequence[torch.Tensor]) -> None:
        """A flat buffer of the weights in the gradient bucket's layout (the same strides)."""
        total = sum(p.numel() for p in params)
        self.weights = torch.zeros(total, device=self.device)
        self.params, self.views, offset = list(params), [], 0
        for p in self.params:
            self.views.append(self.weights.as_strided(p.size(), p.stride(), offset))
            offset += p.numel()

    @torch.no_grad()
    def _gather_weights(self, flat: torch.Tensor) -> None:
        for v, p in zip(self._views_of(flat), self.params, strict=True):
            v.copy_(p)

    @torch.no_grad()
    def _scatter_weights(self, flat: torch.Tensor) -> None:
        for v, p in zip(self._views_of(flat), self.params, strict=True):
            p.copy_(v)

    def _views_of(self, flat: torch.Tensor) -> list[torch.Tensor]:
        if flat is self.weights:
            return self.views
        out, offset = [], 0
        for p in self.params:
            out.append(flat.as_strided(p.size(), p.stride(), flat.storage_offset() + offset))
            offset += p.numel()
        return out

    # -- the whole run ----------------------------------------------------------------------------
    def train(self, loop: Loop, mll: MLLog, local_samples: int) -> int:
        self.loop = loop
        self._views(loop.workload.parameters())
        if self.rank == 0:
            return self.serve(loop)
        if self.gem is not None:  # the centre at the last two pulls (GEM's Δc): the start, twice
            self._gather_weights(self.weights)
            self.centre, self.centre_before = self.weights.clone(), self.weights.clone()
        if self.resumed:
            loop.step = int(self.resumed.get("worker_steps", {}).get(str(self.group), 0))
            self.version = int(self.resumed.get("version", 0))
        epoch = loop.run_epochs(mll, local_samples)
        if self.leader and not self.stopped_by_master:
            head = torch.zeros(mw.HEAD + loop.bucket.flat.numel(), device=self.comm)
            head[mw.KIND], head[mw.STEP], head[mw.WAIT_S] = mw.DONE, loop.step, self.wait_s
            self._call(dist.send, head, dst=0, group=self.pairs[self.group])
        return epoch

    def serve(self, loop: Loop) -> int:
        """The master: apply what arrives, answer each worker, until every worker is done."""
        core, bucket, n = self.core, loop.bucket, loop.bucket.n_grads
        arrivals: queue.Queue[tuple[int, str, Any, float]] = queue.Queue()
        answered = [threading.Event() for _ in self.members]
        size = mw.HEAD + bucket.flat.numel()

        def receive(g: int) -> None:
            try:
                while True:
                    msg = torch.zeros(size, device=self.comm)
                    dist.recv(msg, src=self.members[g][0], group=self.pairs[g])
                    arrivals.put((g, "msg", msg, loop.rec.elapsed()))
                    if msg[mw.KIND].item() == mw.DONE:
                        return
                    answered[g].wait()
                    answered[g].clear()
                    if self.finished.get(g):
                        return
            except (RuntimeError, dist.DistBackendError) as exc:
                arrivals.put((g, "lost", str(exc).splitlines()[0], loop.rec.elapsed()))

        self.finished: dict[int, str] = {}
        lost: dict[int, dict[str, Any]] = {}
        per: dict[int, dict[str, Any]] = {
            g: {"ranks": m, "steps": 0, "wait_for_weights_s": 0.0, "status": "training"}
            for g, m in enumerate(self.members)
        }
        self.stats = {"lost": lost, "per_worker": per}
        for g in range(len(self.members)):
            threading.Thread(target=receive, args=(g,), daemon=True).start()
        self.version = self.ledger.version = int(self.resumed.get("version", 0))
        if self.rule in ("easgd", "gem"):
            self._gather_weights(self.weights)  # the centre
        reply_weights = torch.zeros(n, device=self.device)
        apply_s = send_s = idle_s = 0.0
        code, verdict = mw.GO, None
        t_start = loop.train_start = time.perf_counter()
        loop.started = True
        while len(self.finished) < len(self.members):
            t = time.perf_counter()
            g, kind, msg, at = arrivals.get()
            idle_s += time.perf_counter() - t
            if kind == "lost":
                lost[g] = {"worker": g, "ranks": self.members[g], "t_s": round(at, 3),
                           "last_step": per[g]["steps"], "reason": msg}  # fmt: skip
                per[g]["status"] = "lost"
                self.finished[g] = "lost"
                loop.rec.write("lost", worker=g, ranks=self.members[g], reason=msg)
                continue
            head = msg[: mw.HEAD].tolist()
            per[g]["steps"], per[g]["wait_for_weights_s"] = int(head[mw.STEP]), head[mw.WAIT_S]
            if head[mw.KIND] == mw.DONE:
                per[g]["status"] = "done"
                self.finished[g] = "done"
                continue
            t = time.perf_counter()
            msg = msg.to(self.device)
            payload, slots = msg[mw.HEAD : mw.HEAD + n], msg[mw.HEAD + n :]
            pulled = int(head[mw.VERSION])
            if self.rule == "downpour":
                applied, stale = self.ledger.judge(g, pulled)
                if applied:
                    bucket.grads.copy_(payload)
                    loop.workload.update()
                self._gather_weights(reply_weights)
            elif self.rule == "gem":  # the worker's scaled step, added to the centre
                applied, stale = self.ledger.judge(g, pulled)
                if applied:
                    self.weights.add_(payload)
                    self._scatter_weights(self.weights)
                reply_weights = self.weights
            else:
                applied, stale = True, self.ledger.meet(g, pulled)
                before = mw.elastic_centre_(self.weights, payload, core.easgd_alpha)
                self._scatter_weights(self.weights)
                reply_weights = before
            if self.device.type == "cuda":
                torch.cuda.current_stream(self.device).synchronize()
            took = time.perf_counter() - t
            apply_s += took
            values = dict(zip(bucket.slots, slots.tolist(), strict=True))
            self._account(loop, values, applied, int(head[mw.SAMPLES]))
            if code == mw.GO:
                code, verdict = self._verdict(loop, head)
            reply = torch.cat([
                torch.tensor([self.ledger.version, code, float(applied), stale],
                             dtype=torch.float32, device=self.device),
                reply_weights,
            ]).to(self.comm)  # fmt: skip
            loop.rec.write(
                "update", worker=g, worker_step=int(head[mw.STEP]), version=self.ledger.version,
                pulled=pulled, staleness=stale, applied=applied, apply_s=took,
                loss=values.get("loss"),
            )  # fmt: skip
            t = time.perf_counter()
            if code != mw.GO:
                self.finished[g] = "stopped"
                per[g]["status"] = "stopped"
            # a worker that died meanwhile: its receiving thread reports it lost
            with contextlib.suppress(RuntimeError, dist.DistBackendError):
                dist.send(reply, dst=self.members[g][0], group=self.pairs[g])
            send_s += time.perf_counter() - t
            answered[g].set()
        loop.train_end = time.perf_counter()
        total = max(loop.train_end - t_start, 1e-9)
        if verdict is not None:
            loop.stop_reason = verdict
        elif lost and len(lost) == len(self.members):
            loop.stop_reason = "workers_lost"
        else:
            loop.stop_reason = "epochs"
        self.stats["busy"] = {
            "apply_s": round(apply_s, 4), "send_s": round(send_s, 4), "idle_s": round(idle_s, 4),
            "total_s": round(total, 4), "apply_fraction": apply_s / total,
            "send_fraction": send_s / total, "idle_fraction": idle_s / total,
            "busy_fraction": (apply_s + send_s) / total,
        }  # fmt: skip
        return int(loop.step / loop.steps_per_epoch)

    def _account(self, loop: Loop, values: dict[str, float], applied: bool, samples: int) -> None:
        """The loop's bookkeeping of one arrival: step count, samples, DLT, TTL."""
        if applied:
            loop.step += 1
        loop.samples += samples
        if loop.dlt_s is None:
            loop.dlt_s = loop.rec.elapsed()  # the first loss reported
            loop.rec.write("phase", phase="first_step")
        global_ = {k: v for k, v in values.items() if k not in ("stop_vote", "requeue_vote")}
        smoothed = loop.smoother.push(global_["loss"])
        loop.last_global, loop.last_smoothed = global_, smoothed
        if loop.ttl_s is None and smoothed is not None and smoothed < loop.target_loss:
            loop.ttl_s = loop.total_elapsed()
            loop.rec.write("phase", phase="target", step=loop.step, ttl_s=loop.ttl_s)

    def _verdict(self, loop: Loop, head: list[float]) -> tuple[int, str | None]:
        """Whether the workers go on: the target, the walltime, a requeue (the master's own
        signals, or a worker's votes)."""
        core = self.core
        if checkpoint.preempted() or head[mw.REQUEUE_VOTE] > 0:
            limit = core.max_requeues
            if limit is None or loop.segment < limit:
                return mw.REQUEUE, "requeue"
            return mw.STOP, "requeues"
        late = (
            core.time_limit is not None and loop.rec.elapsed() > core.time_limit - core.stop_margin
        )
        if late or head[mw.STOP_VOTE] > 0:
            return mw.STOP, "walltime"
        if loop.ttl_s is not None and core.stop_at_target:
            return mw.STOP, "target"
        return mw.GO, None

    # -- summary and checkpoint -----------------------------------------------------------------
    def metrics(self) -> dict[str, Any]:
        if self.rank != 0:
            return {"weights_wait_s": round(self.wait_s, 4)}
        per = self.stats.get("per_worker", {})
        for g, counts in self.ledger.by_worker.items():
            per[g].update(applied=counts["applied"], rejected=counts["rejected"])
        lost = list(self.stats.get("lost", {}).values())
        return {
            "master_worker": {
                "rule": self.rule,
                "workers": len(self.members),
                "group_size": self.size,
                "max_staleness": self.core.max_staleness,
                **(
                    {"gem_kappa": self.core.gem_kappa, "gem_momentum": self.core.gem_momentum}
                    if self.gem is not None
                    else {}
                ),
                **self.ledger.summary(),
                "master_busy": self.stats.get("busy"),
                "per_worker": {str(g): v for g, v in per.items()},
            },
            "lost_workers": lost,
        }

    def state(self) -> dict[str, Any]:
        per = self.stats.get("per_worker", {})
        return {"version": self.ledger.version,
                "worker_steps": {str(g): v["steps"] for g, v in per.items()}}  # fmt: skip

    def restore(self, state: dict[str, Any]) -> None:
        self.resumed = dict(state)

    def _staged(self, fn, tensor: torch.Tensor, **kwargs: Any) -> None:  # type: ignore[no-untyped-def]
        """``fn`` on ``tensor``, through host memory where the backend cannot take it."""
        if tensor.device == self.comm:
            self._call(fn, tensor, **kwargs)
            return
        host = tensor.to(self.comm)
        self._call(fn, host, **kwargs)
        tensor.copy_(host)

    @staticmethod
    def _call(fn, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        try:
            fn(*args, **kwargs)
        except (RuntimeError, dist.DistBackendError) as exc:  # Gloo/NCCL peer loss, timeouts
            raise PeerFailure(
                f"{fn.__name__} with the master or the worker group failed: "
                f"{str(exc).splitlines()[0]}"
            ) from exc


ENGINE = MasterWorkerEngine
