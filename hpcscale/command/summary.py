"""The summary of a job that ran a training command: what every job's summary has (status,
failures, hosts: ``train.records.summarize``), the command's own figures (wall time, exit
statuses, peak memory), and what its output lets hpcscale know: MLPerf logging lines (``mllog``)
and ``hpcscale.track`` records (DLT, TTL on the smoothed loss, epochs, samples/s, steady state).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from hpcscale.command import mllog
from hpcscale.command.config import parse_target
from hpcscale.fsutil import atomic_write_json
from hpcscale.train.records import read_records, steady_state, summarize

IDENTITY_KEYS = ("kind", "study", "site", "job", "rank", "world", "segment", "host", "t", "t_total")


def statuses(folder: Path, world: int) -> dict[int, dict[str, Any]]:
    out = {}
    for rank in range(world):
        try:
            st = json.loads((folder / f"rank-{rank}.status.json").read_bytes())
        except (OSError, ValueError):
            continue
        if isinstance(st, dict):
            out[rank] = st
    return out


def summarize_command(folder: Path, world: int, write: bool = True) -> dict[str, Any]:
    """Merge the ranks' statuses, records and rank 0's output into ``summary.json``."""
    folder = Path(folder)
    summary = summarize(folder, world, write=False)
    sts = statuses(folder, world)
    summary.update(command_metrics(folder, world, sts))
    # the first-hand failure: a rank whose command failed on its own, not one stopped by a
    # signal (the launcher stops the others when one fails) nor one that left no status
    own = [
        f
        for f in summary["failures"]
        if not sts.get(f["rank"], {"terminated": 1}).get("terminated")
    ]
    if own:
        summary["failure"] = own[0]
    if any(s.get("timed_out") for s in sts.values()):
        summary["status"] = "timeout"
    if summary["status"] == "completed":
        summary["stop_reason"] = "exit"
    if write:
        atomic_write_json(folder / "summary.json", summary)
    return summary


def command_metrics(folder: Path, world: int, sts: dict[int, dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    started = [s["started_at"] for s in sts.values() if "started_at" in s]
    ended = [s["ended_at"] for s in sts.values() if "ended_at" in s]
    if started and ended:
        out["wall_time_s"] = round(max(ended) - min(started), 4)
    out["rank_run_s"] = {str(r): s.get("run_s") for r, s in sts.items()}
    out["exit_status"] = {str(r): s.get("signal") or s.get("exit_code") for r, s in sts.items()}
    rss = {str(r): s["peak_rss_gib"] for r, s in sts.items() if s.get("peak_rss_gib") is not None}
    if rss:
        out["peak_rss_gib"] = max(rss.values())
        out["peak_rss_gib_per_rank"] = rss
    gpu = [s["peak_gpu_memory_gib"] for s in sts.values() if s.get("peak_gpu_memory_gib")]
    out["peak_device_memory_gib"] = max(gpu) if gpu else None
    zero = sts.get(0, {})
    config = zero.get("config") or {}
    process_start = zero.get("started_at", 0.0) - zero.get("start_s", 0.0)
    out["process_start_at"] = process_start
    log = mllog.read([folder / "rank-0.out", folder / "rank-0.err"])
    target = parse_target(config["target"]) if config.get("target") else None
    if log.events or log.malformed:
        out.update(mllog.metrics(log, process_start, target))
    elif target is not None:
        out["ttl_s"] = None
        out["ttl_note"] = f"--target {target}: the output has no :::MLLOG lines"
    out.update(track_metrics(folder, world, config))
    return out


def track_metrics(folder: Path, world: int, config: dict[str, Any]) -> dict[str, Any]:
    """The core's figures from ``hpcscale.track`` records, if the command wrote any."""
    rows = read_records(folder / "rank-0.jsonl") if (folder / "rank-0.jsonl").exists() else []
    steps = [r for r in rows if r.get("kind") == "step"]
    syncs = [r for r in rows if r.get("kind") == "sync"]
    if not steps:
        return {}
    firsts = []
    for rank in range(world):
        path = folder / f"rank-{rank}.jsonl"
        first = next((r for r in read_records(path) if r.get("kind") == "step"), None)
        if path.exists() and first is not None:
            firsts.append(first["t"])
    out: dict[str, Any] = {"dlt_s": max(firsts), "steps": len(steps)}
    out["dlt_parts_s"] = _dlt_parts(rows, steps[0]["t"])
    target = next(
        (r for r in rows if r.get("kind") == "phase" and r.get("phase") == "target"), None
    )
    out["ttl_s"] = target["ttl_s"] if target else None
    out["target_loss"] = config.get("target_loss")
    out["ttl_window"] = config.get("ttl_window")
    if target is None:
        out["ttl_note"] = (
            "no --target-loss given" if config.get("target_loss") is None
            else f"the smoothed loss never fell below {config['target_loss']:g}"
        )  # fmt: skip
    train_s = max((syncs or steps)[-1]["t"] - steps[0]["t"], 1e-9)
    samples = [s.get("global_samples") or 0 for s in syncs]
    out["train_time_s"] = round(train_s, 4)
    if any(samples):
        out["samples_per_s"] = sum(samples) / train_s
        out["samples_per_s_per_rank"] = out["samples_per_s"] / world
        out["global_batch"] = int(statistics.median(samples))
    epochs = {int(s["epoch"]) for s in steps if isinstance(s.get("epoch"), (int, float))}
    if epochs:
        out["epochs"] = len(epochs)
        out["epoch_rate_per_min"] = len(epochs) / (train_s / 60)
        out["steps_per_epoch"] = len(steps) / len(epochs)
    if syncs:
        out["final_global_loss"] = syncs[-1].get("global_loss")
        out["final_smoothed_loss"] = syncs[-1].get("smoothed_loss")
    evals = [r for r in rows if r.get("kind") == "eval"]
    if evals:
        out.update({k: v for k, v in evals[-1].items() if k not in IDENTITY_KEYS})
    out.update(steady_state(folder / "rank-0.jsonl", out))
    return out


def _dlt_parts(rows: list[dict[str, Any]], first_step_t: float) -> dict[str, float]:
    """DLT's parts from ``track.phase`` marks: start-up until the first mark, then each marked
    phase until the next mark (or the first step)."""
    skip = ("command_start", "target")
    marks = [
        (r["phase"], r["t"])
        for r in rows
        if r.get("kind") == "phase" and r.get("phase") not in skip and r["t"] <= first_step_t
    ]
    if not marks:
        return {}
    parts = {"start_up": round(marks[0][1], 4)}
    for (name, t), nxt in zip(marks, [*[m[1] for m in marks[1:]], first_step_t], strict=True):
        parts[name] = round(nxt - t, 4)
    return parts
