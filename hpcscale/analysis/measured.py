"""What a study's completed jobs measured, as the predictor needs it (``Measured``), and the
bootstrap resampling of those measurements (``resample``): the input side of ``predict``."""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from hpcscale.errors import UserError
from hpcscale.study import collect
from hpcscale.train.noise import b_noise as noise_ratio
from hpcscale.train.records import WARMUP_STEPS, noise_steps, read_records

NEEDED = ("steps", "dlt_s", "train_time_s")  # what a job's summary must have to be used


@dataclass
class Measured:
    """What one completed job measured, as the predictor needs it."""

    label: str
    n: int  # ranks
    nodes: int
    batch: int  # per rank
    train_samples: int
    steps: int
    ttl_steps: int | None  # steps to the target (None: not reached)
    dlt_s: float
    dlt_parts: dict[str, float]
    step_s: float  # steady step
    allreduce_s: float
    first_step_s: float
    gradient_bytes: int | None
    precision: str | None
    data_bytes: float | None  # the data set's files (staging's file-system bound)
    gaps: list[float] = field(default_factory=list)  # steady step gaps, for the bootstrap
    noise_g2: list[float] = field(default_factory=list)
    noise_trace: list[float] = field(default_factory=list)

    @property
    def global_batch(self) -> int:
        return self.batch * self.n

    @property
    def local_s(self) -> float:
        return max(self.step_s - self.allreduce_s, 1e-9)

    @property
    def b_noise(self) -> float | None:
        return noise_ratio(self.noise_g2, self.noise_trace)


def measured_jobs(study: Path) -> list[Measured]:
    """The study's completed jobs; UserError if it has none."""
    jobs = []
    for row in collect(study):
        if row.get("status") != "completed":
            continue
        if not all(isinstance(row.get(k), (int, float)) for k in NEEDED):
            continue  # a summary without the figures (another tool's, a hand-made one)
        jobs.append(_measured(row, Path(study) / row["folder"]))
    if not jobs:
        raise UserError(
            f"{study}: no completed job with {', '.join(NEEDED)} to predict from "
            f"(hpcscale collect {study})"
        )
    return jobs


def _measured(row: dict[str, Any], folder: Path) -> Measured:
    n = int(row.get("world_size") or row.get("ranks") or 1)
    steps = int(row["steps"])
    ttl_steps = row.get("ttl_steps")
    if ttl_steps is None and row.get("ttl_s") is not None and row.get("stop_reason") == "target":
        ttl_steps = steps  # summaries before ttl_steps: a run that stopped at the target
    split = row.get("step_time_split_s") or {}
    parts = dict(row.get("dlt_parts_s") or {})
    gaps = _gaps(folder / "rank-0.jsonl")
    step_s = row.get("steady_step_s") or (statistics.median(gaps) if gaps else None)
    if step_s is None:  # summaries without the steady figure or records: TTL's training phase
        if row.get("ttl_s") is not None and ttl_steps and ttl_steps > 1:
            step_s = (row["ttl_s"] - row["dlt_s"]) / (ttl_steps - 1)
        else:
            step_s = row["train_time_s"] / steps
    first = parts.get("first_step")
    if first is None:
        first = max(row["train_time_s"] - (steps - 1) * step_s, 0.0)
    rows = noise_steps(folder / "rank-0.jsonl")
    config = row.get("config") or {}
    data = row.get("data") or {}
    spe = row.get("steps_per_epoch") or 1
    train = data.get("train_events") or spe * int(config.get("batch") or 1) * n
    return Measured(
        label=row["label"],
        n=n,
        nodes=int(row.get("nodes") or 1),
        batch=int(config.get("batch") or row.get("global_batch", n) // n),
        train_samples=int(train),
        steps=steps,
        ttl_steps=ttl_steps,
        dlt_s=float(row["dlt_s"]),
        dlt_parts=parts,
        step_s=float(step_s),
        allreduce_s=float(split.get("allreduce_s") or 0.0),
        first_step_s=float(first),
        gradient_bytes=row.get("gradient_bytes"),
        precision=row.get("precision"),
        data_bytes=_data_bytes(data.get("folder")),
        gaps=gaps,
        noise_g2=[r["noise_g2"] for r in rows],
        noise_trace=[r["noise_trace"] for r in rows],
    )


def _data_bytes(folder: str | None) -> float | None:
    """The bytes of the data set's files, if its folder is still there."""
    if not folder or not Path(folder).is_dir():
        return None
    return float(sum(f.stat().st_size for f in Path(folder).iterdir() if f.is_file()))


def _gaps(path: Path) -> list[float]:
    if not path.exists():
        return []
    syncs = [(r["step"], r.get("segment"), r["t"]) for r in read_records(path)
             if r.get("kind") == "sync"]  # fmt: skip
    return [b[2] - a[2] for a, b in itertools.pairwise(syncs)
            if b[0] == a[0] + 1 and b[1] == a[1] and a[0] >= WARMUP_STEPS]  # fmt: skip


def resample(jobs: Sequence[Measured], rng: np.random.Generator) -> list[Measured]:
    """One bootstrap sample: the jobs of each size drawn with replacement, and within each job
    its step gaps and noise estimates. With one job per size and no records to resample, the
    jobs themselves are drawn with replacement (a case bootstrap of the fits over sizes)."""
    if all(not j.gaps and not j.noise_g2 for j in jobs) and len({j.n for j in jobs}) == len(jobs):
        return [jobs[i] for i in rng.integers(0, len(jobs), len(jobs))]
    out = []
    for _, group in itertools.groupby(sorted(jobs, key=lambda j: j.n), key=lambda j: j.n):
        members = list(group)
        for i in rng.integers(0, len(members), len(members)):
            out.append(_resample_job(members[i], rng))
    return out


def _resample_job(job: Measured, rng: np.random.Generator) -> Measured:
    changes: dict[str, Any] = {}
    if job.gaps:
        gaps = [job.gaps[i] for i in rng.integers(0, len(job.gaps), len(job.gaps))]
        changes["step_s"] = statistics.median(gaps)
    if job.noise_g2:
        idx = rng.integers(0, len(job.noise_g2), len(job.noise_g2))
        changes["noise_g2"] = [job.noise_g2[i] for i in idx]
        changes["noise_trace"] = [job.noise_trace[i] for i in idx]
    return replace(job, **changes) if changes else job
