"""Where efficiency went at each size, and each size as predicted from the smaller ones: two
report sections that every scaling study gets.

Ideal TTL at N is TTL₀·N₀/N (the smallest completed size N₀, perfectly scaled). What TTL(N)
spends beyond it is split into start-up (DLT beyond DLT₀·N₀/N), data wait and allreduce (their
per-step growth over N₀, times the steps), statistical efficiency (steps beyond S₀·N₀/N: the
larger global batch needs more samples, McCandlish et al. 2018), and the rest (the local step's
own slow-down: contention for host cores, memory bandwidth).
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from hpcscale.errors import UserError


def _steps_to_target(job: dict[str, Any]) -> float | None:
    if job.get("ttl_steps"):
        return float(job["ttl_steps"])
    if job.get("ttl_s") is not None and job.get("stop_reason") == "target" and job.get("steps"):
        return int(job["steps"])
    return None


def _step_s(job: dict[str, Any], steps: int) -> float | None:
    if job.get("steady_step_s"):
        return float(job["steady_step_s"])
    if job.get("ttl_train_s") is not None and steps > 1:
        return float(job["ttl_train_s"]) / (steps - 1)
    if job.get("ttl_s") is not None and job.get("dlt_s") is not None and steps > 1:
        return (job["ttl_s"] - job["dlt_s"]) / (steps - 1)
    return None


NUMBERS = ("ttl_s", "dlt_s", "ttl_steps", "steady_step_s", "ttl_train_s", "epoch_rate_per_min",
           "steps")  # fmt: skip
NOISY = (("ttl_s", "TTL", "s"), ("dlt_s", "DLT", "s"), ("epoch_rate_per_min", "epochs/min", ""))


def size_means(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per size: the mean of each figure over the size's completed jobs (repeats),
    with the mean step-time split; a figure some repeats lack is the mean of those that have it."""
    groups: dict[int, list[dict[str, Any]]] = {}
    for job in jobs:
        if job["status"] == "completed":
            groups.setdefault(job["n"], []).append(job)
    out = []
    for n, group in sorted(groups.items()):
        row: dict[str, Any] = {"n": n, "status": "completed", "repeats": len(group)}
        for key in NUMBERS:
            values = [j[key] for j in group if isinstance(j.get(key), (int, float))]
            row[key] = statistics.fmean(values) if values else None
        row["stop_reason"] = group[0].get("stop_reason")
        keys = {k for j in group for k in (j.get("step_time_split_s") or {})}
        row["step_time_split_s"] = {
            k: statistics.fmean((j.get("step_time_split_s") or {}).get(k) or 0.0 for j in group)
            for k in keys
        }
        out.append(row)
    return out


def repeat_rows(result: dict[str, Any]) -> list[list[str]]:
    """Per size with repeats: each figure's mean ± standard deviation and its spread in %."""
    groups: dict[int, list[dict[str, Any]]] = {}
    for job in result["jobs"]:
        if job["status"] == "completed":
            groups.setdefault(job["n"], []).append(job)
    if all(len(g) < 2 for g in groups.values()):
        return []
    rows = []
    for n, group in sorted(groups.items()):
        row = [str(n), str(len(group))]
        for key, _, unit in NOISY:
            values = [j[key] for j in group if isinstance(j.get(key), (int, float))]
            if len(values) < 2:
                row.append(f"{values[0]:.3g}{unit}" if values else "–")
                continue
            mean, sd = statistics.fmean(values), statistics.stdev(values)
            half = 1.96 * sd / len(values) ** 0.5
            row.append(f"{mean:.3g} ± {half:.2g}{unit} (spread {sd / mean:.0%})")
        rows.append(row)
    return rows


def efficiency_lines(result: dict[str, Any]) -> list[str]:
    """One line per size after the smallest: TTL efficiency and what it lost, in % of TTL."""
    done = [j for j in size_means(result["jobs"]) if j.get("ttl_s")]
    if len(done) < 2:
        return []
    base = min(done, key=lambda j: j["n"])
    s0 = _steps_to_target(base)
    split0 = base.get("step_time_split_s") or {}
    lines = []
    for job in sorted(done, key=lambda j: j["n"]):
        if job["n"] == base["n"]:
            continue
        ratio = job["n"] / base["n"]
        ttl, ideal = job["ttl_s"], base["ttl_s"] / ratio
        steps = _steps_to_target(job)
        steps = round(steps) if steps else steps
        split = job.get("step_time_split_s") or {}
        parts = {"start-up": (job.get("dlt_s") or 0) - (base.get("dlt_s") or 0) / ratio}
        if steps:
            for key, name in (("data_wait_s", "data wait"), ("allreduce_s", "allreduce")):
                parts[name] = steps * ((split.get(key) or 0) - (split0.get(key) or 0))
            step = _step_s(job, steps)
            if s0 and step:
                parts["statistical efficiency"] = (steps - s0 / ratio) * step
        parts["other"] = ttl - ideal - sum(parts.values())
        lost = ", ".join(f"{k} {v / ttl:+.0%}" for k, v in parts.items())
        extra = f" (steps {steps} vs {s0 / ratio:.0f} at constant samples)" if steps and s0 else ""
        lines.append(
            f"N={job['n']}: TTL efficiency {ideal / ttl:.0%} (TTL {ttl:.1f} s vs ideal "
            f"{ideal:.1f} s); lost, in % of TTL: {lost}{extra}"
        )
    return lines


def predicted_points(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Each size as predicted from the smaller sizes only, beside its measured means."""
    # numpy and the bootstrap: only this section needs the predictor
    from hpcscale.analysis import predict as model
    from hpcscale.analysis.measured import measured_jobs

    try:
        jobs = measured_jobs(Path(result["folder"]))
    except UserError:
        return []
    means = {m["n"]: m for m in size_means(result["jobs"])}
    site = model.study_site(Path(result["folder"]))
    points = []
    for n in sorted({j.n for j in jobs}):
        smaller = [j for j in jobs if j.n < n]
        if n not in means:
            continue
        pred: dict[str, Any] = {"ttl_s": None, "epoch_rate_per_min": None}  # the smallest
        if smaller:
            target = model.make_target(Path(result["folder"]), smaller, site, None, None, None)
            pred = model.predict_size(model.fit_model(smaller), target, n)
        points.append({
            "n": n,
            "from": sorted({j.n for j in smaller}),
            "ttl_s": (means[n].get("ttl_s"), pred["ttl_s"]),
            "epoch_rate_per_min": (means[n].get("epoch_rate_per_min"), pred["epoch_rate_per_min"]),
        })  # fmt: skip
    return points


def predicted_rows(points: list[dict[str, Any]]) -> list[list[str]]:
    """The table of ``predicted_points``: measured, predicted and the error per figure."""
    rows = []
    for p in points:
        if not p["from"]:
            continue  # the smallest size: measured only
        ttl = _pair(*p["ttl_s"], ".1f")
        rate = _pair(*p["epoch_rate_per_min"], ".3g")
        rows.append([str(p["n"]), ",".join(map(str, p["from"])), *ttl, *rate])
    return rows


def _pair(measured: float | None, predicted: float | None, spec: str) -> list[str]:
    if measured is None or predicted is None:
        return [_text(measured, spec), _text(predicted, spec), "–"]
    error = (predicted - measured) / measured
    return [format(measured, spec), format(predicted, spec), f"{error:+.0%}"]


def _text(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)
