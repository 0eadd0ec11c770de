"""The report's comparison of data parallelism with model parallelism (``--model-parallel``) at
equal devices: for each model and device count that jobs of the reported studies ran both ways,
throughput, peak memory per device, the pipeline's bubble and the activation bytes it sends.

A job's figures come from its summary (``job_figures``, for ``results.study_results``); the
section is a table in the report's blocks (``section``), absent when no job used a pipeline.
"""

from __future__ import annotations

from typing import Any

Block = tuple[str, Any]
HEAD = [
    "model", "devices", "parallelism", "groups", "minibatch", "samples/s", "peak memory",
    "bubble", "activations/step", "cut after",
]  # fmt: skip


def job_figures(summary: dict[str, Any]) -> dict[str, Any]:
    """What the comparison needs of one job's summary."""
    p = summary.get("pipeline") or {}
    per_device = p.get("per_device") or []
    peaks = [d["peak_memory_gib"] for d in per_device if d.get("peak_memory_gib") is not None]
    peak = max(peaks) if peaks else summary.get("peak_device_memory_gib")
    rss = [d["peak_rss_gib"] for d in per_device if d.get("peak_rss_gib") is not None]
    return {
        "model_parallel": (summary.get("config") or {}).get("model_parallel") or 1,
        "peak_memory_gib": peak,
        "peak_rss_gib": max(rss) if rss else None,
        "bubble_fraction": p.get("bubble_fraction"),
        "activation_bytes_per_step": p.get("activation_bytes_per_step"),
        "pipeline_cuts": p.get("cuts"),
        "micro_batches": p.get("micro_batches"),
    }


def section(results: list[dict[str, Any]]) -> list[Block]:
    """Data- vs model-parallel jobs of the same model on the same number of devices."""
    jobs = [
        (r.get("model") or "–", j) for r in results for j in r["jobs"] if j["status"] == "completed"
    ]
    if not any(j.get("model_parallel", 1) > 1 for _, j in jobs):
        return []
    rows = []
    jobs.sort(key=lambda mj: (mj[0], mj[1]["n"], mj[1].get("model_parallel", 1)))
    for model, j in jobs:
        k = j.get("model_parallel", 1)
        groups = j["n"] // k if k else j["n"]
        rate = j.get("samples_per_s_steady") or j.get("samples_per_s")
        rows.append(
            [
                model,
                str(j["n"]),
                "data" if k == 1 else f"model, {k} stages",
                str(groups),
                str(j.get("batch") or "–"),
                "–" if rate is None else f"{rate:.1f}",
                _num(j.get("peak_memory_gib"), ".2f", " GiB"),
                "–" if j.get("bubble_fraction") is None else f"{100 * j['bubble_fraction']:.0f} %",
                _num(j.get("activation_bytes_per_step"), ".2f", " MiB", 2**-20),
                ", ".join(j.get("pipeline_cuts") or []) or "–",
            ]
        )
    return [
        ("h2", "Data parallelism vs model parallelism"),
        (
            "p",
            "The same model on the same number of devices, each data-parallel rank either a whole "
            "model or a pipeline of K stages (--model-parallel K; seed 004, section 4.3). "
            "Minibatch: per data-parallel group. Throughput: steady state. Peak memory: the "
            "largest device's (GPUs only). Bubble: the stages' mean idle fraction of a step. "
            "Activations: bytes a pipeline sends forward per step (as many go back as gradients).",
        ),
        ("table", (HEAD, rows)),
    ]


def _num(value: float | None, spec: str, unit: str, scale: float = 1.0) -> str:
    return "–" if value is None else f"{value * scale:{spec}}{unit}"
