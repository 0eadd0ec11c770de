"""Validate `hpcscale predict`: predictions from the smaller sizes of a study against its larger
ones, with the errors printed (issue 28's goal: epoch rate within 15 %, TTL within 25 % at twice
the largest measured size, as SMAPE over the held-back sizes).

Usage: python bench/predict_validation.py [--cpu STUDY ...]

1. results/h200x4 (JishNet 3600², 1, 2 → 4 H200s), each of its three studies;
2. CPU studies given with --cpu (e.g. results/predictions/cpu-124: jishnet-small, 1, 2 → 4
   ranks): steps to the target, TTL and epoch rate;
3. SummitDev (the paper's exponents over 32–192 P100s: epoch rate ∝ N^0.9, TTL ∝ N^-0.7 for
   JishNet) from the summitdev descriptor and the measured single-H200 run of
   results/h200x2-timing, with B_noise fitted to that study's 1 and 2 H200s, scaled to the
   paper's 15,000 training images.

Results are in results/predictions/README.md.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from hpcscale.analysis import predict as model
from hpcscale.analysis.fit import fit_power_law
from hpcscale.analysis.measured import Measured, measured_jobs
from hpcscale.sites.registry import load_site
from hpcscale.study import collect

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"


def smape(pred: list[float], meas: list[float]) -> float:
    """Symmetric mean absolute percentage error, in %."""
    p, m = np.asarray(pred, dtype=float), np.asarray(meas, dtype=float)
    return float(100 * np.mean(2 * np.abs(p - m) / (np.abs(p) + np.abs(m))))


def held_back(study: Path, measured: list[int]) -> dict[str, tuple[list[float], list[float]]]:
    """Predict every larger size of ``study`` from ``measured``; (predicted, measured) lists."""
    jobs = measured_jobs(study)
    small = [j for j in jobs if j.n in measured]
    site = model.study_site(study, [ROOT / "results" / "predictions"])  # cpu4 is kept there
    target = model.make_target(study, small, site, None, None, None)
    rows = {r["label"]: r for r in collect(study) if r.get("status") == "completed"}
    out: dict[str, tuple[list[float], list[float]]] = {}
    for job in jobs:
        if job.n in measured:
            continue
        pred = model.predict(small, target, [job.n])[0]
        got = rows[job.label]
        for key, value in (
            ("steps", job.ttl_steps),
            ("ttl_s", got.get("ttl_s")),
            ("epoch_rate_per_min", got.get("epoch_rate_per_min")),
        ):
            if value is None or pred[key] is None:
                continue
            p, m = out.setdefault(key, ([], []))
            p.append(float(pred[key]))
            m.append(float(value))
            lo_hi = pred.get(f"{key}_interval")
            iv = f" [{lo_hi[0]:.4g}, {lo_hi[1]:.4g}]" if lo_hi else ""
            print(f"  N={job.n} {key}: predicted {pred[key]:.4g}{iv}, measured {value:.4g}")
        print(f"  N={job.n} assumes: {pred['assumption']}")
    return out


def report(name: str, errors: dict[str, tuple[list[float], list[float]]]) -> None:
    for key, (p, m) in errors.items():
        goal = {"epoch_rate_per_min": 15, "ttl_s": 25}.get(key)
        verdict = (
            ""
            if goal is None
            else f" (goal ≤ {goal} %: {'met' if smape(p, m) <= goal else 'MISSED'})"
        )
        print(f"{name}: SMAPE {key} {smape(p, m):.1f} %{verdict}")


def summitdev() -> None:
    """The paper's exponents from the summitdev descriptor and one measured H200 step."""
    timing = json.loads((RESULTS / "h200x2-timing/report/results.json").read_text())["studies"][0]
    measured = []
    for j in timing["jobs"]:
        parts = j["dlt_parts_s"]
        measured.append(
            Measured(
                label=j["label"], n=j["n"], nodes=1, batch=7, train_samples=2700,
                steps=j["steps"], ttl_steps=j["steps"], dlt_s=j["dlt_s"], dlt_parts=parts,
                step_s=j["steady_step_s"], allreduce_s=j["step_time_split_s"]["allreduce_s"],
                first_step_s=parts["first_step"], gradient_bytes=None, precision="bf16",
                data_bytes=None,
            )
        )  # fmt: skip
    # The paper's data: 15,000 training images (the steps to the target scale with the same
    # B_noise and S_min: the target is a loss, not an epoch count).
    fitted = model.fit_model(measured)
    params = sum(JISHNET_PARAMS)
    paper = replace(
        fitted,
        train_samples=15000,
        staging_per_rank_events=2700.0,
        gradient_bytes=4.0 * params,  # fp32 gradients
        base_n=1,
    )
    here = None
    there = load_site("summitdev")
    for precision in ("fp32", "bf16"):
        jobs = [replace(j, precision=precision) for j in measured]
        target = model.make_target(Path("."), jobs, here, there, "NVIDIA H200", None)
        sizes = [32, 64, 128, 192]
        rows = [model.predict_size(paper, target, n) for n in sizes]
        rate = fit_power_law(sizes, [r["epoch_rate_steady_per_min"] for r in rows])
        ttl = fit_power_law(sizes, [r["ttl_s"] for r in rows])
        print(f"SummitDev from one H200 step ({target.compute_note}):")
        for n, r in zip(sizes, rows, strict=True):
            print(f"  N={n}: step {r['step_s'] * 1e3:.0f} ms (allreduce "
                  f"{r['allreduce_s'] * 1e3:.1f} ms), steps {r['steps']:.0f}, DLT "
                  f"{r['dlt_s']:.1f} s, TTL {r['ttl_s']:.0f} s, "
                  f"epoch rate {r['epoch_rate_steady_per_min']:.2f}/min")  # fmt: skip
        for what, law, paper_k in (("epoch rate", rate, 0.9), ("TTL", ttl, -0.7)):
            ratio_p, ratio_m = 6**law.exponent, 6**paper_k  # 192 vs 32 GPUs
            error = smape([ratio_p], [ratio_m])
            print(f"  {what} ∝ N^{law.exponent:.2f} (paper N^{paper_k}); 192/32 ratio "
                  f"{ratio_p:.2f} vs {ratio_m:.2f}: SMAPE {error:.1f} %")  # fmt: skip


# JishNet's parameters at 3600²: conv 1·10·25+10, 10·64·25+64, 64·128·16+128, 128·256·16+256,
# Linear 20736·32+32, 32·5+5.
JISHNET_PARAMS = (260, 16064, 131200, 524544, 663584, 165)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cpu", type=Path, action="append", default=[], help="CPU study (1,2→4)")
    args = ap.parse_args()
    for name in ("ttl-1.38", "ttl-1.38-sidestream", "ttl-1.45"):
        study = RESULTS / "h200x4" / name
        print(f"h200x4/{name}: 1, 2 → 4 H200s")
        report(f"h200x4/{name}", held_back(study, [1, 2]))
    for study in args.cpu:
        print(f"{study}: 1, 2 → 4 ranks")
        report(str(study), held_back(study, [1, 2]))
    summitdev()


if __name__ == "__main__":
    main()
