"""Where efficiency went at each size, and each size as predicted from the smaller ones: two
report sections that every scaling study gets.

Ideal TTL at N is TTL₀·N₀/N (the smallest completed size N₀, perfectly scaled). What TTL(N)
spends beyond it is split into start-up (DLT beyond DLT₀·N₀/N), data wait and allreduce (their
per-step growth over N₀, times the steps), statistical efficiency (steps beyond S₀·N₀/N: the
larger global batch needs more samples, McCandlish et al. 2018), and the rest (the local step's
own slow-down: contention for host cores, memory bandwidth).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hpcscale.errors import UserError


def _steps_to_target(job: dict[str, Any]) -> int | None:
    if job.get("ttl_steps"):
        return int(job["ttl_steps"])
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


def efficiency_lines(result: dict[str, Any]) -> list[str]:
    """One line per size after the smallest: TTL efficiency and what it lost, in % of TTL."""
    done = [j for j in result["jobs"] if j["status"] == "completed" and j.get("ttl_s")]
    if len(done) < 2:
        return []
    base = min(done, key=lambda j: j["n"])
    s0 = _steps_to_target(base)
    split0 = base.get("step_time_split_s") or {}
    lines = []
    for job in sorted(done, key=lambda j: j["n"]):
        if job is base or job["n"] == base["n"]:
            continue
        ratio = job["n"] / base["n"]
        ttl, ideal = job["ttl_s"], base["ttl_s"] / ratio
        steps = _steps_to_target(job)
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


def predicted_rows(result: dict[str, Any]) -> list[list[str]]:
    """Each size from its prediction out of the smaller sizes, beside what it measured."""
    # numpy and the bootstrap: only this section needs the predictor
    from hpcscale.analysis import predict as model

    try:
        jobs = model.measured_jobs(Path(result["folder"]))
    except UserError:
        return []
    rows = []
    for n in sorted({j.n for j in jobs}):
        smaller = [j for j in jobs if j.n < n]
        if not smaller:
            continue
        target = model.make_target(Path(result["folder"]), smaller, None, None, None, None)
        pred = model.predict_size(model.fit_model(smaller), target, n)
        here = [j for j in result["jobs"] if j["n"] == n and j["status"] == "completed"]
        if not here:
            continue
        got = here[0]
        sources = ",".join(str(s) for s in sorted({j.n for j in smaller}))
        ttl = _pair(got.get("ttl_s"), pred["ttl_s"], ".1f")
        rate = _pair(got.get("epoch_rate_per_min"), pred["epoch_rate_per_min"], ".3g")
        rows.append([str(n), sources, *ttl, *rate])
    return rows


def _pair(measured: float | None, predicted: float | None, spec: str) -> list[str]:
    if measured is None or predicted is None:
        return [_text(measured, spec), _text(predicted, spec), "–"]
    error = (predicted - measured) / measured
    return [format(measured, spec), format(predicted, spec), f"{error:+.0%}"]


def _text(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)
