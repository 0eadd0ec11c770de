"""From study folders to the figures a report shows: per-job table, fits, paper references."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from hpcscale.analysis import parallelism
from hpcscale.analysis.fit import fit_power_law
from hpcscale.fsutil import atomic_write
from hpcscale.spec import SPEC_NAME
from hpcscale.spec import load as load_spec
from hpcscale.study import collect, load
from hpcscale.train.records import DLT_PARTS, SCHEMA_VERSION, skipped_lines

# Hagen et al. (seed 000), SummitDev, 32-192 GPUs: TTL ∝ N^α, epoch rate ∝ N^β.
PAPER = {
    "site": "summitdev",
    "gpus": [32, 64, 128, 192],
    "jishnet": {
        "alpha": -0.7,
        "beta": 0.9,
        "val_accuracy": 0.788,
        "val_accuracy_sd": 0.038,
        "epoch_rate_per_min": [0.5, 1.5],
    },
    "scnet": {"alpha": -0.6, "beta": 0.9, "val_accuracy": 0.768, "val_accuracy_sd": 0.033},
    "jishnet_confusion_percent": [
        [66.7, 33.0, 0.0, 0.0, 0.3],
        [1.6, 98.0, 0.0, 0.4, 0.0],
        [0.0, 0.1, 98.9, 0.0, 1.0],
        [1.6, 1.7, 1.3, 37.5, 57.8],
        [0.6, 0.1, 2.1, 26.3, 71.0],
    ],
}


def job_size(row: dict[str, Any]) -> int:
    """N of a job: its GPU count on GPU sites, its rank count otherwise."""
    return int(row.get("gpus") or row.get("ranks") or 0)


def _fit(jobs: list[dict[str, Any]], value: Any) -> dict[str, Any] | None:
    """The power law of ``value(job)`` against N over the completed jobs that have it."""
    pts = [(j["n"], value(j)) for j in jobs if j["status"] == "completed" and value(j)]
    law = fit_power_law([p[0] for p in pts], [p[1] for p in pts]) if pts else None
    return law.as_dict() if law else None


# A job summary's figures the report reads as they are.
JOB_KEYS = (
    "dlt_s", "ttl_s", "epoch_rate_per_min", "val_accuracy", "stop_reason", "epochs", "steps",
    "final_smoothed_loss", "confusion_percent", "step_time_split_s", "train_time_s",
    "dlt_parts_s", "ttl_train_s", "steady_step_s", "samples_per_s_steady",
    "epoch_rate_steady_per_min", "master_worker", "lost_workers", "ttl_steps", "b_noise", "noise",
    "global_batch", "gradient_bytes", "schema_version", "rebuilt",
)  # fmt: skip
# Each fitted figure (job key → name in ``fits``); DLT's parts are fitted one by one besides.
FITTED = (
    ("ttl_s", "ttl"),
    ("epoch_rate_per_min", "epoch_rate"),
    ("dlt_s", "dlt"),
    ("samples_per_s", "samples_per_s"),
    ("ttl_train_s", "ttl_train"),
    ("epoch_rate_steady_per_min", "epoch_rate_steady"),
    ("samples_per_s_steady", "samples_per_s_steady"),
)


def _job(study: Path, r: dict[str, Any], base: dict[str, Any] | None, scaling: bool) -> dict:
    """One job's row of the results: its shape, status and figures (and, in a scaling study,
    its speed-up over the smallest completed size)."""
    n = job_size(r)
    job = {
        "label": r["label"],
        "dir": str(Path(study) / r["folder"]),
        "n": n,
        "gpus": r.get("gpus"),
        "ranks": r.get("ranks"),
        "nodes": r.get("nodes"),
        "status": r.get("status"),
        "reason": r.get("reason"),
        **{k: r.get(k) for k in JOB_KEYS},
    }
    job["lr_scaling"] = (r.get("config") or {}).get("lr_scaling")
    job["samples_per_s"] = r.get("samples_per_s", r.get("images_per_s"))  # older summaries
    job.update({k: r.get(k) for k in ("params", "fold", "trial", "generation", "value",
                                      "classes") if r.get(k) is not None})  # fmt: skip
    job.update(declared_values(r))
    job.update(parallelism.job_figures(r))
    # speed-ups compare sizes: not the trials, points or folds of one size (their
    # differences are the options', not the ranks')
    completed = r.get("status") == "completed"
    if scaling and base and completed and base.get("epoch_rate_per_min"):
        speedup = r["epoch_rate_per_min"] / base["epoch_rate_per_min"]
        job["speedup"] = speedup
        job["efficiency"] = speedup / (n / job_size(base))
    return job


def _fits(jobs: list[dict[str, Any]]) -> dict[str, Any]:
    """Every fitted figure's power law against N, and each part of DLT's (which part scales
    and which is a fixed cost)."""
    fits: dict[str, Any] = {name: _fit(jobs, lambda j, k=key: j.get(k)) for key, name in FITTED}
    fits["dlt_parts"] = {
        part: _fit(jobs, lambda j, part=part: (j.get("dlt_parts_s") or {}).get(part))
        for part in DLT_PARTS.values()
    }
    return fits


def study_results(study: Path) -> dict[str, Any]:
    """A study folder's results: its jobs' rows, the fits against N, what failed and why."""
    manifest = load(study)
    rows = sorted(collect(study), key=job_size)
    done = [r for r in rows if r.get("status") == "completed"]
    base = done[0] if done else None
    scaling = (manifest.kind or "scaling") == "scaling"
    jobs = [_job(study, r, base, scaling) for r in rows]
    fits = _fits(jobs)
    first = done[0] if done else (rows[0] if rows else {})
    return {
        "study": manifest.study,
        "kind": manifest.kind,
        "spec": study_spec(study),
        "folder": str(study),
        "site": manifest.site,
        "site_digest": manifest.site_digest,
        "scheduler": manifest.scheduler,
        "loss": first.get("loss"),
        "target_loss": first.get("target_loss"),
        "model": first.get("model") or (first.get("config") or {}).get("model"),
        "workload": first.get("workload") or "jishnet",  # summaries before workloads: JishNet
        "sample_unit": first.get("sample_unit") or "images",
        "provenance": first.get("provenance"),
        "data": first.get("data"),
        "report": first.get("report") or {},  # what the workload asks the report to show
        "jobs": jobs,
        "fits": fits,
        "missing": [
            {"label": j["label"], "reason": j["reason"] or j["status"]}
            for j in jobs
            if j["status"] != "completed"
        ],
        "walltime_s": {j.label: j.walltime_s for j in manifest.jobs},
        # Garbled record lines (read_records skips them, not the rest of the file), per job.
        "skipped_record_lines": {
            r["label"]: n
            for r in rows
            if (n := sum(map(skipped_lines, (Path(study) / r["folder"]).glob("rank-*.jsonl"))))
        },
    }


def study_spec(study: Path) -> dict[str, Any] | None:
    """The study's kept spec (``study.yaml``) as data; None for a study without one."""
    path = Path(study) / SPEC_NAME
    return load_spec(path).model_dump(mode="json") if path.exists() else None


def declared_values(summary: dict[str, Any]) -> dict[str, Any]:
    """A job's values that its workload's ``report`` block names (quality, columns, curves
    stored in the summary, "versus" axes), plus figures derived for every workload: the
    minibatch per rank, the median I/O time per batch and the training minutes per epoch."""
    decl = summary.get("report") or {}
    keys = {c["key"] for c in decl.get("columns", [])} | {c["key"] for c in decl.get("xy", [])}
    keys |= {v[a] for v in decl.get("versus", []) for a in ("x", "y")}
    if decl.get("quality"):
        keys.add(decl["quality"]["key"])
    split = summary.get("step_time_split_s") or {}
    rate = summary.get("epoch_rate_per_min")
    derived = {
        "batch": (summary.get("config") or {}).get("batch"),
        "io_s": split.get("io_s"),
        "epoch_minutes": 1 / rate if rate else None,
    }
    return {k: summary.get(k, derived.get(k)) for k in sorted(keys)} | {"batch": derived["batch"]}


def study_label(result: dict[str, Any]) -> str:
    """How a study is named in legends and headings: its folder's name (what the user typed
    and sees), then site and model."""
    name = Path(result.get("folder") or result["study"]).name
    return f"{name}: {result['site']} {result.get('model') or ''}".strip()


def file_tag(result: dict[str, Any]) -> str:
    """A study's part of its figures' file names: site and study id, reduced to characters
    safe in a file name (a site or id from a summary is data, not a path)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", f"{result['site']}-{result['study']}").strip(".")


# The workloads the paper measured (its rows and its confusion matrix are theirs only).
PAPER_WORKLOADS = ("jishnet", "scnet")


def write_results(results: list[dict[str, Any]], path: Path) -> None:
    # the summaries' schema version: results.json, too, only ever gains fields
    body = {"schema_version": SCHEMA_VERSION, "studies": results, "paper": PAPER}
    atomic_write(path, json.dumps(body, indent=2) + "\n")
