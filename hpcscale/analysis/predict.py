"""Predicted DLT, step time, steps to the target, TTL, epoch rate and efficiency at sizes a study
did not run, from what it measured (``hpcscale predict``).

Per size N (ranks, one per GPU on GPU sites), with B = N·b the global batch:

- DLT = its constant parts as measured (imports, device, build, first step) + staging scaled
  with the events per rank, bounded below by the data's bytes over the site's file-system
  bandwidth when the descriptor gives one;
- step = local work per step as measured (compute, data, update: the steady step less its
  allreduce), scaled to another site's GPUs by a measured bench ratio or the ratio of their peak
  figures, + the allreduce of the gradient's bytes: the α–β model (``comm.py``) with the link
  figures of the descriptor, else a link fitted to the study's own measured allreduce times;
- steps to the target S = S_min·(1 + B_noise/B) (McCandlish et al. 2018), B_noise as measured
  in the jobs (``train/noise.py``) or fitted to the steps the jobs took; S_min from the jobs that
  reached the target;
- TTL = DLT + (S − 1)·step (the first step is DLT's); epoch rate = epochs/minute over the
  training phase (first step + the rest); efficiency = samples/s per rank relative to the
  smallest measured size N₀'s (its step over this one).

Every figure comes with a 95 % interval from a bootstrap over the steps of each job (step gaps
and noise estimates, where the records are kept) and over the jobs of each size (repeats), and
each size names the assumption that dominates its TTL in one line.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hpcscale.analysis.comm import LinkCost, allreduce_s, fit_link
from hpcscale.analysis.measured import Measured, resample
from hpcscale.errors import UserError
from hpcscale.sites.models import Site
from hpcscale.sites.registry import load_site
from hpcscale.study import load
from hpcscale.train.noise import b_noise as noise_ratio

BOOTSTRAP = 200
# DLT's parts that do not shrink with more ranks (placement copies the whole data set per node);
# staging, a rank's share of the data, does.
CONSTANT_PARTS = ("imports", "device", "placement", "build", "first_step")


# -- the model ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """Where the prediction is for: the site's figures, its ranks per node."""

    site: Site | None
    ranks_per_node: int
    compute_ratio: float  # local step time there / here
    compute_note: str


@dataclass(frozen=True)
class Model:
    """The fitted parts, from one (bootstrap) sample of the measured jobs."""

    base_n: int
    base_step_s: float  # the smallest measured size's steady step
    local_s: float
    first_step_s: float
    constant_dlt_s: float
    staging_s: float
    staging_per_rank_events: float
    link: LinkCost | None  # fitted from measured times (one level), when the site has none
    gradient_bytes: float
    b_noise: float | None
    s_min: float | None
    samples_to_target: float | None  # when there is no noise scale: samples taken as constant
    batch: int
    train_samples: int
    noise_source: str
    data_bytes: float | None
    # the local step's growth per extra rank on a node (host cores, memory and PCIe shared by
    # the node's ranks), fitted to the measured sizes within a node; 0 when they cannot tell
    contention_s: float = 0.0
    top_per_node: int = 1


def fit_model(jobs: Sequence[Measured]) -> Model:
    """The model's parts from the measured jobs (the largest size stands for local work)."""
    by_n = sorted(jobs, key=lambda j: j.n)
    top = [j for j in by_n if j.n == by_n[-1].n]
    base = [j for j in by_n if j.n == by_n[0].n]
    nbytes = float(next((j.gradient_bytes for j in jobs if j.gradient_bytes), 0) or 0)
    link = fit_link([(j.n, j.allreduce_s) for j in jobs], nbytes or 1.0)
    parts = [j.dlt_parts for j in top if j.dlt_parts]
    if parts:
        constant = statistics.fmean(sum(p.get(k, 0.0) for k in CONSTANT_PARTS) for p in parts)
        staging = statistics.fmean(p.get("staging", 0.0) for p in parts)
    else:
        constant, staging = statistics.fmean(j.dlt_s for j in top), 0.0
    b_noise, s_min, samples, source = _steps_model(jobs)
    contention, top_per_node = _contention(jobs, top)
    return Model(
        base_n=base[0].n,
        base_step_s=statistics.fmean(j.step_s for j in base),
        local_s=statistics.fmean(j.local_s for j in top),
        first_step_s=statistics.fmean(j.first_step_s for j in top),
        constant_dlt_s=constant,
        staging_s=staging,
        staging_per_rank_events=top[0].train_samples / top[0].n,
        link=link,
        gradient_bytes=nbytes or 1.0,
        b_noise=b_noise,
        s_min=s_min,
        samples_to_target=samples,
        batch=top[0].batch,
        train_samples=top[0].train_samples,
        noise_source=source,
        data_bytes=top[0].data_bytes,
        contention_s=contention,
        top_per_node=top_per_node,
    )


def _contention(jobs: Sequence[Measured], top: Sequence[Measured]) -> tuple[float, int]:
    """The local step's slope in ranks per node (least squares over the measured sizes, at
    least 0), and the ranks per node of the largest size."""
    per_node = [(math.ceil(j.n / j.nodes), j.local_s) for j in jobs]
    top_per_node = math.ceil(top[0].n / top[0].nodes)
    if len({x for x, _ in per_node}) < 2:
        return 0.0, top_per_node
    slope = float(np.polyfit([x for x, _ in per_node], [y for _, y in per_node], 1)[0])
    return max(slope, 0.0), top_per_node


def _steps_model(
    jobs: Sequence[Measured],
) -> tuple[float | None, float | None, float | None, str]:
    """B_noise (measured, else fitted to the steps to the target), S_min, and where B_noise came
    from; without either, the samples to the target taken as constant."""
    reached = [j for j in jobs if j.ttl_steps]
    g2 = [x for j in jobs for x in j.noise_g2]
    trace = [x for j in jobs for x in j.noise_trace]
    b_noise = noise_ratio(g2, trace)
    source = (
        "measured in the jobs' gradients" if b_noise is not None
        else "not resolved by the jobs' gradients (mean |G|² ≤ 0: noise-dominated)" if g2
        else "not measured"
    )  # fmt: skip
    if b_noise is None and len({j.global_batch for j in reached}) >= 2:
        b_noise = _fit_b_noise([(j.global_batch, j.ttl_steps) for j in reached])  # type: ignore[misc]
        source = "fitted to the steps the measured sizes took"
    if not reached:
        return b_noise, None, None, source
    if b_noise is None:
        samples = statistics.fmean(j.ttl_steps * j.global_batch for j in reached)  # type: ignore[operator]
        return None, None, samples, "none: samples to the target taken as constant"
    s_min = statistics.fmean(j.ttl_steps / (1 + b_noise / j.global_batch) for j in reached)  # type: ignore[operator]
    return b_noise, s_min, None, source


def _fit_b_noise(points: list[tuple[int, int]]) -> float | None:
    """B_noise and S_min of S = S_min + S_min·B_noise·(1/B), least squares in 1/B."""
    x = np.array([1 / b for b, _ in points], dtype=float)
    y = np.array([s for _, s in points], dtype=float)
    slope, intercept = np.polyfit(x, y, 1)
    if intercept <= 0 or slope <= 0:
        return None
    return float(slope / intercept)


def predict_size(model: Model, target: Target, n: int) -> dict[str, float | None]:
    """The figures at ``n`` ranks from one model sample."""
    per_node = min(target.ranks_per_node, n)
    nodes = math.ceil(n / per_node)
    batch = model.batch * n
    spe = max(model.train_samples // n // model.batch, 1)
    staging = model.staging_s * (model.train_samples / n) / model.staging_per_rank_events
    staging = max(staging, staging_floor(target.site, model.data_bytes))
    dlt = model.constant_dlt_s + staging
    comm, _ = _allreduce(model, target, n, per_node)
    step = _local(model, target, per_node) + comm
    steps = _steps(model, batch)
    ttl = dlt + (steps - 1) * step if steps is not None else None
    train_s = (model.first_step_s + (steps - 1) * step) if steps is not None else None
    rate_steady = 60 / (step * spe)
    rate = (steps / spe) / (train_s / 60) if steps is not None and train_s else rate_steady
    # samples/s per rank against the smallest measured size's: as measured on the study's own
    # site, else as predicted for the same target (the same GPUs and links)
    base_step = model.base_step_s
    if target.compute_ratio != 1.0:
        per_base = min(target.ranks_per_node, model.base_n)
        base_comm, _ = _allreduce(model, target, model.base_n, per_base)
        base_step = model.local_s * target.compute_ratio + base_comm
    eff = base_step / step
    return {
        "n": n, "nodes": nodes, "global_batch": batch, "dlt_s": dlt, "staging_s": staging,
        "step_s": step, "allreduce_s": comm, "steps": steps, "ttl_s": ttl,
        "epoch_rate_per_min": rate, "epoch_rate_steady_per_min": rate_steady,
        "efficiency": eff, "steps_factor": (1 + model.b_noise / batch) if model.b_noise else None,
    }  # fmt: skip


def _local(model: Model, target: Target, per_node: int) -> float:
    """The local step at ``per_node`` ranks on a node: the largest size's, plus the measured
    contention for the node's extra ranks (on the study's own site only: another site's hosts
    are not this one's)."""
    if target.compute_ratio != 1.0 or model.contention_s <= 0:
        return model.local_s * target.compute_ratio
    return model.local_s + model.contention_s * (per_node - model.top_per_node)


def _allreduce(model: Model, target: Target, n: int, per_node: int) -> tuple[float, str]:
    perf = target.site.performance if target.site else None
    intra = _cost(perf.intra_node) if perf else None
    inter = _cost(perf.inter_node) if perf else None
    needs_inter = n > per_node
    have = inter if needs_inter else intra
    if have is not None and model.gradient_bytes > 1:
        seconds = allreduce_s(model.gradient_bytes, n, per_node, intra or inter, inter)
        return seconds, "α–β model (ring or tree) with the descriptor's link figures"
    if model.link is not None:
        seconds = allreduce_s(model.gradient_bytes, n, n, model.link, None)
        return seconds, "ring model fitted to the study's own measured allreduce times"
    return 0.0, "no allreduce cost (no link figures, none measured)"


def _cost(link: Any) -> LinkCost | None:
    return LinkCost(link.bandwidth_gbs, link.latency_us) if link is not None else None


def _steps(model: Model, batch: int) -> float | None:
    """Steps to the target at global batch ``batch`` (at least the one that reports a loss)."""
    if model.b_noise is not None and model.s_min is not None:
        return max(model.s_min * (1 + model.b_noise / batch), 1.0)
    if model.samples_to_target is not None:
        return max(model.samples_to_target / batch, 1.0)
    return None


# -- the whole prediction ------------------------------------------------------------------------
def predict(
    jobs: Sequence[Measured], target: Target, sizes: Sequence[int], seed: int = 0
) -> list[dict[str, Any]]:
    """Per size: each figure with its bootstrap interval, and the dominating assumption."""
    model = fit_model(jobs)
    points = [predict_size(model, target, n) for n in sizes]
    rng = np.random.default_rng(seed)
    samples: list[list[dict[str, float | None]]] = [[] for _ in sizes]
    for _ in range(BOOTSTRAP):
        m = fit_model(resample(jobs, rng))
        for i, n in enumerate(sizes):
            samples[i].append(predict_size(m, target, n))
    out = []
    for n, point, boot in zip(sizes, points, samples, strict=True):
        row: dict[str, Any] = dict(point)
        for key in ("dlt_s", "step_s", "steps", "ttl_s", "epoch_rate_per_min", "efficiency"):
            values = [b[key] for b in boot if b[key] is not None]
            row[f"{key}_interval"] = (
                [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]
                if values and point[key] is not None
                else None
            )
        per_node = min(target.ranks_per_node, n)
        row["allreduce_model"] = _allreduce(model, target, n, per_node)[1]
        row["assumption"] = dominant(model, jobs, row, target)
        out.append(row)
    return out


def model_notes(jobs: Sequence[Measured], target: Target) -> dict[str, Any]:
    """What the prediction rests on, for the output's header."""
    model = fit_model(jobs)
    return {
        "measured_sizes": sorted({j.n for j in jobs}),
        "compute": target.compute_note,
        "b_noise": model.b_noise,
        "b_noise_source": model.noise_source,
        "s_min": model.s_min,
        "gradient_bytes": model.gradient_bytes if model.gradient_bytes > 1 else None,
        "local_step_s": model.local_s,
        "contention_s_per_rank": model.contention_s,
        "constant_dlt_s": model.constant_dlt_s,
        "staging_s_at_largest": model.staging_s,
    }


def dominant(model: Model, jobs: Sequence[Measured], row: dict[str, Any], target: Target) -> str:
    """The one assumption that decides this size's TTL most (or its step time)."""
    largest_b = max(j.global_batch for j in jobs)
    ttl, steps = row.get("ttl_s"), row.get("steps")
    if steps is None:
        return "no job reached the target: steps to the target cannot be predicted"
    if row["global_batch"] > 2 * largest_b:
        if model.b_noise is None:
            return (f"steps: samples to the target taken as constant from B ≤ {largest_b} "
                    "(no noise scale measured)")  # fmt: skip
        return (f"steps: S = S_min(1 + B_noise/B), B_noise ≈ {model.b_noise:.3g} "
                f"({model.noise_source}) extrapolated from B ≤ {largest_b} to "
                f"{row['global_batch']}, at the measured learning-rate scaling")  # fmt: skip
    contention = (
        f", + {model.contention_s * 1e3:.2g} ms per extra rank on a node (measured contention)"
        if model.contention_s > 0 and target.compute_ratio == 1.0 else ""
    )  # fmt: skip
    shares = {
        "DLT: its constant parts as measured, staging ∝ events per rank": row["dlt_s"],
        f"allreduce: {row['allreduce_model']}": (steps - 1) * row["allreduce_s"],
        f"compute: local step as measured ({target.compute_note}{contention})": (steps - 1)
        * (row["step_s"] - row["allreduce_s"]),
    }
    name = max(shares, key=lambda k: shares[k])
    return f"{name} ({shares[name] / ttl:.0%} of TTL)" if ttl else name


def study_site(study: Path, sites_dir: Sequence[Path] = ()) -> Site | None:
    """The study's own site descriptor, or None where it is not known here any more."""
    try:
        return load_site(load(study).site, sites_dir)
    except UserError:
        return None


def staging_floor(site: Site | None, data_bytes: float | None) -> float:
    """Seconds the file system needs to deliver the data to all ranks (0 without figures)."""
    if site is None or not data_bytes or not site.performance.fs_bandwidth_gbs:
        return 0.0
    return data_bytes / (site.performance.fs_bandwidth_gbs * 1e9)


# Peak TFLOP/s (FP32, dense FP16/BF16) by GPU model, from NVIDIA's datasheets, for a study whose
# own site's descriptor gives none (``local`` detects its GPUs): a substring of the GPU's name.
GPU_PEAKS = {
    "H200": (67.0, 989.0), "H100": (67.0, 989.0), "A100": (19.5, 312.0), "V100": (15.7, 125.0),
    "P100-SXM2": (10.6, 21.2), "P100": (9.3, 18.7), "K20X": (3.95, None),
}  # fmt: skip


def peaks(site: Site | None, gpu_name: str | None) -> tuple[float | None, float | None]:
    """A site's (FP32, FP16) GPU peaks: its descriptor's, else the datasheet's for ``gpu_name``."""
    perf = site.performance if site else None
    if perf and (perf.gpu_fp32_tflops or perf.gpu_fp16_tflops):
        return perf.gpu_fp32_tflops, perf.gpu_fp16_tflops
    own = site.node.gpus.model if site and site.node and site.node.gpus else ""
    name = (gpu_name or own).upper()
    return next((v for key, v in GPU_PEAKS.items() if key in name), (None, None))


def ranks_per_node(site: Site | None, jobs: Sequence[Measured]) -> int:
    """Ranks a node of ``site`` holds: workers per node, else one per GPU; one node (``local``):
    all of them; else what the measured jobs put on a node."""
    if site is not None:
        if site.workers_per_node:
            return site.workers_per_node
        if site.node and site.node.gpus:
            return site.node.gpus.count
        if site.limits.max_nodes == 1:
            return 1 << 20
    return max(math.ceil(j.n / j.nodes) for j in jobs)


def make_target(
    study: Path,
    jobs: Sequence[Measured],
    here: Site | None,
    there: Site | None,
    gpu_name: str | None,
    bench_ratio: float | None,
) -> Target:
    """Where the prediction is for (``there``, else the study's own site ``here``) and how its
    compute compares with the study's: a measured bench ratio, else the peak figures' ratio."""
    site = there or here
    per_node = ranks_per_node(site, jobs)
    if bench_ratio is not None:
        return Target(site, per_node, bench_ratio, f"× {bench_ratio:g}, the measured bench ratio")
    if there is None or (here is not None and there.name == here.name):
        return Target(site, per_node, 1.0, "on the study's own site")
    half = any(j.precision == "bf16" for j in jobs)
    mine, theirs = peaks(here, gpu_name), peaks(there, None)
    i = 1 if half and mine[1] and theirs[1] else 0
    if not (mine[i] and theirs[i]):
        raise UserError(
            f"--site {there.name}: no GPU peak figure for "
            f"{'the study' if not mine[i] else there.name} "
            f"(performance.gpu_fp{'16' if i else '32'}_tflops); give --bench-ratio X "
            "(a step there takes X times the study's)"
        )
    ratio = mine[i] / theirs[i]
    what = "FP16/BF16" if i else "FP32"
    note = f"× {ratio:.3g}, the ratio of {what} peaks ({mine[i]:g} → {theirs[i]:g} TFLOP/s)"
    return Target(there, per_node, ratio, note)
