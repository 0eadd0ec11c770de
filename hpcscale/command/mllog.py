"""MLPerf logging lines (the ``mlperf_logging`` package's ``:::MLLOG {json}``) in a command's
output, turned into the training core's summary fields.

The rules are MLPerf's: DLT = process start → ``run_start`` (its parts: start-up until
``staging_start``, staging until ``staging_stop``, the rest); epochs from ``epoch_start``/
``epoch_stop`` (the epoch rate over first ``epoch_start`` → last ``epoch_stop``); evaluations are
``eval_*`` keys with numeric values; TTL = process start → the first evaluation that meets the
target (``--target KEY>=VALUE``), else ``run_stop`` with status ``success``; samples/s from
``train_samples`` × epochs, or the epochs' ``samples_count``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpcscale.command.config import Target

PREFIX = ":::MLLOG"


@dataclass
class Log:
    events: list[dict[str, Any]] = field(default_factory=list)  # {key, value, t (s), metadata}
    malformed: int = 0
    first_malformed: str | None = None

    def times(self, key: str) -> list[float]:
        return [e["t"] for e in self.events if e["key"] == key]

    def first(self, key: str) -> dict[str, Any] | None:
        return next((e for e in self.events if e["key"] == key), None)


def read(paths: list[Path]) -> Log:
    """Every ``:::MLLOG`` line of ``paths`` (a command's stdout and stderr), in time order; a
    line that does not parse (not JSON, no key or time) is counted, not fatal."""
    log = Log()
    for path in paths:
        if not path.exists():
            continue
        with open(path, "rb") as fh:
            for raw in fh:
                line = raw.decode("utf-8", "replace")
                at = line.find(PREFIX)
                if at < 0:
                    continue
                event = _event(line[at + len(PREFIX) :])
                if event is None:
                    log.malformed += 1
                    log.first_malformed = log.first_malformed or line.strip()[:120]
                else:
                    log.events.append(event)
    log.events.sort(key=lambda e: e["t"])
    return log


def _event(text: str) -> dict[str, Any] | None:
    try:
        row = json.loads(text)
        key, t = row["key"], float(row["time_ms"]) / 1000
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(key, str) or not math.isfinite(t):
        return None
    meta = row.get("metadata") if isinstance(row.get("metadata"), dict) else {}
    return {"key": key, "value": row.get("value"), "t": t, "metadata": meta}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def metrics(log: Log, start: float, target: Target | None) -> dict[str, Any]:
    """The summary's fields from the log; ``start``: the command's process start (clock s)."""
    out: dict[str, Any] = {"mllog_events": len(log.events)}
    if log.malformed:
        out["mllog_malformed_lines"] = log.malformed
        out["mllog_note"] = f"{log.malformed} malformed :::MLLOG line(s) skipped, first: " + (
            log.first_malformed or ""
        )
    if not log.events:
        return out
    run_start = log.first("run_start")
    if run_start is not None:
        out["dlt_s"] = run_start["t"] - start
        parts: dict[str, float] = {}
        s0, s1 = log.first("staging_start"), log.first("staging_stop")
        if s0 and s1:
            parts = {"start_up": s0["t"] - start, "staging": s1["t"] - s0["t"],
                     "rest": run_start["t"] - s1["t"]}  # fmt: skip
        out["dlt_parts_s"] = {k: round(v, 4) for k, v in parts.items()}
    starts, stops = log.times("epoch_start"), log.times("epoch_stop")
    if stops:
        train_s = stops[-1] - (starts[0] if starts else (run_start or {"t": start})["t"])
        out["epochs"] = len(stops)
        out["train_time_s"] = round(train_s, 4)
        if train_s > 0:
            out["epoch_rate_per_min"] = len(stops) / (train_s / 60)
            samples = _samples(log, len(stops))
            if samples is not None:
                out["samples_per_s"] = samples / train_s
    batch = log.first("global_batch_size")
    if batch is not None and _number(batch["value"]) is not None:
        out["global_batch"] = int(batch["value"])
    evals = [
        {"key": e["key"], "value": float(e["value"]), "t_s": round(e["t"] - start, 4),
         **({"epoch": e["metadata"]["epoch_num"]} if "epoch_num" in e["metadata"] else {})}
        for e in log.events
        if e["key"].startswith("eval_") and _number(e["value"]) is not None
    ]  # fmt: skip
    if evals:
        out["evaluations"] = evals
        for e in evals:  # the last value of each key, as the core's evaluation
            out["val_" + e["key"].removeprefix("eval_")] = e["value"]
    out.update(_ttl(log, start, target))
    return out


def _samples(log: Log, epochs: int) -> float | None:
    train = log.first("train_samples")
    if train is not None and _number(train["value"]) is not None:
        return float(train["value"]) * epochs
    counted = [
        _number(e["metadata"].get("samples_count")) for e in log.events if e["key"] == "epoch_stop"
    ]
    counted = [c for c in counted if c is not None]
    return sum(counted) if counted else None


def _ttl(log: Log, start: float, target: Target | None) -> dict[str, Any]:
    if target is not None:
        values = [e for e in log.events if e["key"] == target.key]
        out: dict[str, Any] = {"target": str(target)}
        if not values:
            keys = sorted({e["key"] for e in log.events})
            out["ttl_s"] = None
            out["ttl_note"] = (
                f"--target {target}: the log has no {target.key} lines (its keys: "
                f"{', '.join(keys)})"
            )
            return out
        hit = next(
            (e for e in values if _number(e["value"]) is not None and target.met(e["value"])),
            None,
        )
        out["ttl_s"] = hit["t"] - start if hit else None
        if hit is None:
            last = values[-1]["value"]
            out["ttl_note"] = f"{target.key} never met {target} (last value {last})"
        return out
    stop = log.first("run_stop")
    if stop is None:
        return {"ttl_s": None, "ttl_note": "the log has no run_stop (the run did not end)"}
    status = stop["metadata"].get("status")
    if status == "success":
        return {"ttl_s": stop["t"] - start}
    return {"ttl_s": None, "ttl_note": f"run_stop with status {status!r}, not success"}
