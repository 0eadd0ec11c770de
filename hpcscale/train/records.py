"""Per-rank records, rank status files and the job summary.

Files in a job folder::

    rank-<r>.jsonl        append-only JSON lines, flushed per line. Two kinds per step:
                          "step" (written before the allreduce: local loss/accuracy, time split)
                          and "sync" (after it: allreduce wait, global loss, smoothed loss);
                          plus "phase" lines: the start-up timeline (imports, device,
                          staged, built, first_step; seconds since process start), target.
    rank-<r>.status.json  written atomically when the rank exits, ok or failed, with its reason
    summary.json          the job's figures, written atomically by ``summarize``
    mlperf.log            MLPerf-style events (rank 0)

``summarize`` is a pure function of the folder, so rank 0 calls it at the end of a job and
``hpcscale run``/``collect`` can call it again when rank 0 itself died.
"""

from __future__ import annotations

import itertools
import json
import statistics
import time
from collections import deque
from pathlib import Path
from typing import IO, Any

from hpcscale.fsutil import atomic_write_json
from hpcscale.train.noise import b_noise

# Version of summary.json's layout: 2 added schema_version, "noise" and b_noise (issue 28).
# Columns are only ever added, so a reader of version k reads every later version.
SCHEMA_VERSION = 2

# What the summary copies from the rank statuses as they are.
IDENTITY = (
    "study", "site", "job", "workload", "model", "sample_unit", "provenance", "config", "data",
)  # fmt: skip
# The rank's start-up timeline: "phase" records the loop writes (seconds since process start),
# in order, and the DLT part each one ends. DLT ends at "first_step"; its parts are the
# differences between consecutive phases (``dlt_parts``).
DLT_PARTS = {
    "imports": "imports",  # python, torch and hpcscale imported, options parsed
    "device": "device",  # device and communicator ready
    "placed": "placement",  # --data-placement node-local (the copy to the node) or image
    "staged": "staging",  # the rank's data loaded (the workload's own load time is in data)
    "built": "build",  # models, optimizers, weights broadcast
    "first_step": "first_step",  # the first step: warm-up (cuDNN's search, compilation)
}
WARMUP_STEPS = 5  # steps left out of the steady-state step time
# Keys of step/sync lines that are not part of a step's time split, though they end in "_s".
NOT_SPLIT = frozenset({"ttl_s", "wall_offset_s"})


class RecordWriter:
    """Append-only JSON lines; every line carries the job's identity and the rank's wall time."""

    def __init__(self, path: Path, t0: float, **identity: Any) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] = open(path, "a", buffering=1)  # noqa: SIM115 - open for the run
        self.t0 = time.time() if t0 is None else t0
        self.identity = identity
        self.offset = 0.0  # wall time of earlier walltime segments

    def elapsed(self) -> float:
        return time.time() - self.t0

    def write(self, kind: str, **fields: Any) -> None:
        t = self.elapsed()
        line = {
            "kind": kind,
            **self.identity,
            "t": round(t, 6),
            "t_total": round(t + self.offset, 6),
            **fields,
        }
        self._fh.write(json.dumps(line) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


class Smoother:
    """Trailing mean of the last ``window`` global losses; None until the window is full."""

    def __init__(self, window: int) -> None:
        self.values: deque[float] = deque(maxlen=window)

    def push(self, value: float) -> float | None:
        self.values.append(value)
        if len(self.values) < (self.values.maxlen or 1):
            return None
        return sum(self.values) / len(self.values)


def write_status(folder: Path, rank: int, status: dict[str, Any]) -> None:
    atomic_write_json(folder / f"rank-{rank}.status.json", {"rank": rank, **status})


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every well-formed line of a rank's records. A torn last line (a kill mid-write) or a
    garbled line in the middle is skipped and counted, never the rest of the file: the count is
    ``skipped_lines(path)``, and the summary and the report say how many were skipped."""
    return _read(path)[0]


def skipped_lines(path: Path) -> int:
    """How many lines of a rank's records were not JSON objects (see ``read_records``)."""
    return _read(path)[1] if path.exists() else 0


def _read(path: Path) -> tuple[list[dict[str, Any]], int]:
    rows, bad = [], 0
    with open(path, "rb") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:  # JSONDecodeError, or bytes that are not UTF-8
                bad += 1
                continue
            if isinstance(row, dict):
                rows.append(row)
            else:
                bad += 1
    return rows, bad


def summarize(folder: Path, world_size: int, write: bool = True) -> dict[str, Any]:
    """Merge every rank's status and records into the job summary (and write summary.json)."""
    folder = Path(folder)
    statuses = {}
    for rank in range(world_size):
        path = folder / f"rank-{rank}.status.json"
        try:
            status = json.loads(path.read_bytes())
        except (OSError, ValueError):  # none (the rank died first) or torn: as if none
            continue
        if isinstance(status, dict) and "status" in status:
            statuses[rank] = status
    failures = []
    hosts = rank_hosts(folder, world_size, statuses)
    for rank in range(world_size):
        st = statuses.get(rank)
        if st is None:
            last = _last_record(folder / f"rank-{rank}.jsonl")
            where = "no records"
            if last:
                step = f"step {last['step']}" if last.get("step") is not None else "start-up"
                t = last.get("t")
                where = f"last record: {step} at {t:.1f} s" if isinstance(t, int | float) else step
            failure = {
                "rank": rank,
                "reason": f"died without a status (killed or crashed; {where})",
            }
        elif st["status"] != "ok":
            failure = {"rank": rank, "reason": st.get("reason", "unknown")}
            if st.get("peer_failure"):
                failure["peer"] = True  # it stopped because another rank failed
        else:
            continue
        if hosts.get(str(rank)):
            failure["host"] = hosts[str(rank)]
        failures.append(failure)
    # Global figures are identical on every rank; take them from the lowest rank that has them.
    source = next((statuses[r] for r in sorted(statuses) if "metrics" in statuses[r]), {})
    metrics = dict(source.get("metrics", {}))
    # Ranks of workers the master/worker engine lost and went on without: not the job's failure
    # (the summary names them under lost_workers, from the master's metrics).
    lost = {r for w in metrics.get("lost_workers") or [] for r in w.get("ranks", [])}
    failures = [f for f in failures if f["rank"] not in lost]
    dlts = [s["dlt_s"] for s in statuses.values() if s.get("dlt_s") is not None]
    if dlts:
        metrics["dlt_s"] = max(dlts)  # training starts when the slowest rank has loaded
        metrics["dlt_s_per_rank"] = {str(r): s.get("dlt_s") for r, s in statuses.items()}
    metrics["step_time_split_s"] = _median_split(folder, world_size)
    if dlts:
        slowest = max((r for r, s in statuses.items() if s.get("dlt_s") is not None),
                      key=lambda r: statuses[r]["dlt_s"])  # fmt: skip
        metrics["dlt_parts_s"] = dlt_parts(folder / f"rank-{slowest}.jsonl")
    metrics.update(steady_state(folder / "rank-0.jsonl", metrics))
    noise = noise_summary(folder / "rank-0.jsonl")
    if noise:
        metrics["noise"] = noise
        metrics["b_noise"] = noise["b_noise"]
    if metrics.get("ttl_s") is not None and metrics.get("dlt_s") is not None:
        metrics["ttl_train_s"] = metrics["ttl_s"] - metrics["dlt_s"]
    primary = _primary_failure(failures, statuses, folder)
    skipped = {str(r): n for r in range(world_size)
               if (n := skipped_lines(folder / f"rank-{r}.jsonl"))}  # fmt: skip
    summary = {
        "schema_version": SCHEMA_VERSION,
        **{k: source.get(k) for k in IDENTITY},
        "world_size": world_size,
        "status": _status(failures, statuses),
        "stop_reason": source.get("stop_reason") if not failures else "error",
        "failure": primary,
        "failures": failures,
        "hosts": hosts,
        **metrics,
    }
    if skipped:
        summary["skipped_record_lines"] = skipped
    if write:
        atomic_write_json(folder / "summary.json", summary)
    return summary


def rank_hosts(
    folder: Path, world_size: int, statuses: dict[int, dict[str, Any]]
) -> dict[str, str | None]:
    """Where each rank ran (its status, else its last record; None if neither says): the
    nodes of a multi-node job, and the node of a rank that died with it."""
    hosts: dict[str, str | None] = {}
    for rank in range(world_size):
        host = statuses.get(rank, {}).get("host")
        if host is None:
            last = _last_record(folder / f"rank-{rank}.jsonl")
            host = last.get("host") if last else None
        hosts[str(rank)] = host
    return hosts


def dlt_parts(path: Path) -> dict[str, float]:
    """DLT split into the start-up timeline's parts (seconds; they add up to the rank's DLT),
    from the first walltime segment's "phase" records of one rank."""
    times: dict[str, float] = {}
    first_segment = None
    for row in read_records(path) if path.exists() else []:
        if row.get("kind") != "phase" or row.get("phase") not in DLT_PARTS:
            continue
        first_segment = row.get("segment") if first_segment is None else first_segment
        if row.get("segment") == first_segment:
            times.setdefault(row["phase"], row["t"])
    parts, last = {}, 0.0
    for phase, part in DLT_PARTS.items():
        if phase in times:
            parts[part] = round(times[phase] - last, 4)
            last = times[phase]
    return parts


def steady_state(path: Path, metrics: dict[str, Any]) -> dict[str, float | None]:
    """Throughput from the median step time after warm-up (steps after ``WARMUP_STEPS``), beside
    the wall-clock figures: the time between consecutive allreduces of one rank (every rank
    waits for the same allreduce), within a walltime segment."""
    steps = []
    if path.exists():
        steps = [(r["step"], r.get("segment"), r["t"]) for r in read_records(path)
                 if r.get("kind") == "sync"]  # fmt: skip
    gaps = [
        b[2] - a[2]
        for a, b in itertools.pairwise(steps)
        if b[0] == a[0] + 1 and b[1] == a[1] and a[0] >= WARMUP_STEPS
    ]
    if not gaps:
        return {"steady_step_s": None, "samples_per_s_steady": None,
                "epoch_rate_steady_per_min": None}  # fmt: skip
    step_s = statistics.median(gaps)
    batch, spe = metrics.get("global_batch"), metrics.get("steps_per_epoch")
    return {
        "steady_step_s": step_s,
        "samples_per_s_steady": batch / step_s if batch else None,
        "epoch_rate_steady_per_min": 60 / (step_s * spe) if spe else None,
    }


def noise_steps(path: Path) -> list[dict[str, Any]]:
    """The sync records that carry the gradient-noise estimates, after warm-up."""
    if not path.exists():
        return []
    return [r for r in read_records(path) if r.get("kind") == "sync"
            and r.get("noise_g2") is not None and r.get("step", 0) > WARMUP_STEPS]  # fmt: skip


def noise_summary(path: Path) -> dict[str, Any] | None:
    """The job's gradient noise scale: B_noise as the ratio of the mean tr(Σ) to the mean
    |G_true|² over the steps after warm-up (the estimates are unbiased, their ratio of means
    consistent), the last smoothed value, and the batches b and B it was measured with."""
    rows = noise_steps(path)
    if not rows:
        return None
    g2 = [r["noise_g2"] for r in rows]
    trace = [r["noise_trace"] for r in rows]
    return {
        "b_noise": b_noise(g2, trace),
        "b_noise_ema_last": rows[-1].get("b_noise"),
        "g2_mean": statistics.fmean(g2),
        "trace_mean": statistics.fmean(trace),
        "steps": len(rows),
        "b": rows[-1]["noise_b"],
        "big_b": rows[-1]["noise_big_b"],
    }


def _status(failures: list[dict[str, Any]], statuses: dict[int, dict[str, Any]]) -> str:
    """completed; terminated (a signal stopped it: the user, or the scheduler at its limit or on
    ``cancel``; ``collect`` asks the scheduler which); else failed."""
    if not failures:
        return "completed"
    own = [statuses.get(f["rank"]) for f in failures]
    if any(st and st.get("terminated") for st in own) and all(
        st is None or st.get("terminated") or st.get("peer_failure") for st in own
    ):
        return "terminated"
    return "failed"


def _primary_failure(
    failures: list[dict[str, Any]], statuses: dict, folder: Path
) -> dict[str, Any] | None:
    """The rank that failed first, by time, among those that failed first-hand (one that died,
    or one whose own error was not a peer's): a rank killed outright stops its peers, whose
    launcher then signals them (``stopped by SIGTERM``) after it died. A rank's time is when
    its status was written, or, for one that died without a status, its last record."""
    if not failures:
        return None
    own = [f for f in failures if not (statuses.get(f["rank"]) or {}).get("peer_failure")]

    def when(f: dict[str, Any]) -> float:
        rank = f["rank"]
        name = f"rank-{rank}.status.json" if rank in statuses else f"rank-{rank}.jsonl"
        try:
            return (folder / name).stat().st_mtime
        except OSError:
            return float("-inf")  # no trace at all: it died before writing anything

    return min(own, key=when) if own else failures[0]


def _last_record(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    rows = read_records(path)
    return rows[-1] if rows else None


def _median_split(folder: Path, world_size: int) -> dict[str, float]:
    """Median per-step time split over all ranks and steps (first step excluded: warm-up).
    The split is every ``*_s`` field of the step and sync lines: the loop's compute and
    allreduce times and whatever the workload's batches time (decompression, copies, …)."""
    values: dict[str, list[float]] = {}
    for rank in range(world_size):
        path = folder / f"rank-{rank}.jsonl"
        if not path.exists():
            continue
        for row in read_records(path):
            if row.get("kind") in ("step", "sync") and row.get("step", 0) > 1:
                for key, value in row.items():
                    if key.endswith("_s") and key not in NOT_SPLIT:
                        values.setdefault(key, []).append(value)
    return {k: statistics.median(v) for k, v in values.items()}
