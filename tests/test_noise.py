"""The gradient noise scale (McCandlish et al. 2018) and learning-rate scaling: the estimators on
synthetic gradients with a known |G|² and tr(Σ), the smoothing, the schedule's factors, and the
figures a real job records (two Gloo ranks; one rank with --noise-split)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hpcscale.train.noise import Estimate, NoiseScale, b_noise, estimate, steps_factor
from hpcscale.workloads.schedule import lr_factor, scale_factor

TESTS = Path(__file__).resolve().parent
DRIVER = f"""
import sys, time
sys.path.insert(0, {str(TESTS)!r})
from hpcscale import workloads
workloads.register(workloads.WorkloadSpec(
    "fake-linear", "fake_workload", "lartpc", workloads.LARTPC, ("fake-linear",), 100
))
from hpcscale.train.config import parse
from hpcscale.train.loop import run
sys.exit(run(*parse(sys.argv[1:]), time.time()))
"""


def _synthetic(rng, trials: int, ranks: int, b: int, dim: int = 50):
    """Per-rank minibatch gradients g_i = G + ε, ε ~ N(0, Σ/b) with diagonal Σ, in float64;
    returns the true |G|², tr(Σ), and per trial the mean |g_i|² and |mean g_i|²."""
    g_true = rng.normal(size=dim)
    sigma = rng.uniform(0.5, 4.0, size=dim)  # per-sample variances: tr(Σ) = their sum
    eps = rng.normal(size=(trials, ranks, dim)) * np.sqrt(sigma / b)
    g = g_true + eps
    small = (g**2).sum(axis=2).mean(axis=1)
    big = (g.mean(axis=1) ** 2).sum(axis=1)
    return float(g_true @ g_true), float(sigma.sum()), small, big


@pytest.mark.parametrize(("ranks", "b"), [(2, 8), (4, 16), (8, 4)])
def test_estimators_are_unbiased_on_synthetic_gradients(ranks, b):
    rng = np.random.default_rng(ranks * 100 + b)
    g2, trace, small, big = _synthetic(rng, 20_000, ranks, b)
    ests = [estimate(s, b, x, ranks * b) for s, x in zip(small, big, strict=True)]
    g2s = np.array([e.g2 for e in ests])
    traces = np.array([e.trace for e in ests])
    # within four standard errors of the truth (the estimators are unbiased, not exact)
    assert abs(g2s.mean() - g2) < 4 * g2s.std() / math.sqrt(len(g2s))
    assert abs(traces.mean() - trace) < 4 * traces.std() / math.sqrt(len(traces))
    # and a biased alternative (|G_B|² taken as |G_true|²) would be caught at this precision
    assert abs(big.mean() - g2) > 4 * g2s.std() / math.sqrt(len(g2s))
    assert b_noise(list(g2s), list(traces)) == pytest.approx(trace / g2, rel=0.05)


def test_estimate_by_hand_and_its_bad_input():
    # |G_b|² = 5 over b = 2, |G_B|² = 3 over B = 4: |G|² = (4·3 − 2·5)/2 = 1, tr Σ = 2/(1/2−1/4) = 8
    assert estimate(5.0, 2, 3.0, 4) == Estimate(g2=1.0, trace=8.0)
    with pytest.raises(ValueError):
        estimate(1.0, 4, 1.0, 4)


def test_smoothing_is_the_ratio_of_bias_corrected_averages():
    smooth = NoiseScale(decay=0.5)
    assert smooth.value() is None
    assert smooth.push(Estimate(1.0, 10.0)) == pytest.approx(10.0)  # one step: its own ratio
    # EMAs: g2 = 0.5·1 + 0.5·3 (both ×1/(1−0.25)): ratio (0.25·10 + 0.5·2)/(0.25·1 + 0.5·3)
    assert smooth.push(Estimate(3.0, 2.0)) == pytest.approx((2.5 + 1.0) / (0.25 + 1.5))
    smooth.push(Estimate(float("nan"), 1.0))  # a step without a finite estimate is left out
    assert smooth.n == 2
    again = NoiseScale(decay=0.5)
    again.restore(smooth.state())
    assert again.value() == smooth.value()


def test_steps_factor_is_the_papers_model():
    assert steps_factor(64.0, 64) == 2.0  # B = B_noise: twice the fewest steps
    assert steps_factor(64.0, 6400) == pytest.approx(1.01)


def test_lr_factor_warmup_sqrt_and_milestones():
    assert scale_factor("none", 8) == 1 and scale_factor("linear", 8) == 8
    assert scale_factor("sqrt", 16) == 4
    # linear over 8 ranks, 2 warm-up epochs of 10 steps: 1 → 8 over 20 steps
    assert lr_factor(0, "linear", 8, 2.0, 10) == 1.0
    assert lr_factor(10, "linear", 8, 2.0, 10) == pytest.approx(4.5)
    assert lr_factor(20, "linear", 8, 2.0, 10) == 8.0
    assert lr_factor(35, "sqrt", 4, 0.0, 10, milestones=(3,)) == pytest.approx(0.2)
    assert lr_factor(5, "none", 64, 5.0, 10) == 1.0


def _run(tmp_path: Path, ranks: int, *extra: str) -> dict:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / f"job{ranks}"
    args = ["--model", "fake-linear", "--data", str(tmp_path), "--out", str(out)]
    args += ["--epochs", "3", "--no-stop-at-target", "--ttl-window", "5", "--lr", "0.02", *extra]
    env = {"WORLD_SIZE": str(ranks), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", DRIVER, *args],
            env={**os.environ, **env, "RANK": str(r), "LOCAL_RANK": str(r), "OMP_NUM_THREADS": "1"},
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in range(ranks)
    ]
    errors = [p.communicate(timeout=180)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * ranks, errors
    return json.loads((out / "summary.json").read_text())


def test_two_ranks_record_the_noise_scale_for_free(tmp_path):
    summary = _run(tmp_path, 2)
    noise = summary["noise"]
    assert summary["schema_version"] >= 2
    assert (noise["b"], noise["big_b"]) == (16, 32)  # per rank and global batch
    assert noise["steps"] > 0 and noise["trace_mean"] > 0 and noise["g2_mean"] > 0
    assert summary["b_noise"] == pytest.approx(noise["trace_mean"] / noise["g2_mean"])
    assert summary["config"]["lr_scaling"] == "none"  # the model's default, as applied


def test_one_rank_splits_its_minibatch_only_when_asked(tmp_path):
    assert "noise" not in _run(tmp_path, 1)
    summary = _run(tmp_path / "split", 1, "--noise-split")
    assert (summary["noise"]["b"], summary["noise"]["big_b"]) == (8, 16)
    assert summary["b_noise"] > 0


def test_a_model_that_sets_its_own_rate_refuses_lr_scaling(tmp_path):
    res = subprocess.run(
        [sys.executable, "-c", DRIVER, "--model", "fake-linear", "--data", str(tmp_path),
         "--out", str(tmp_path / "j"), "--lr-scaling", "linear"],
        env={**os.environ, "RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 2
    assert "--lr-scaling" in res.stderr and "fake-linear" in res.stderr


def test_synthetic_data_trains_on_one_minibatch_from_memory(tmp_path):
    summary = _run(tmp_path, 1, "--synthetic-data")
    assert summary["config"]["synthetic_data"] is True
    assert summary["steps"] == 3 * summary["steps_per_epoch"]  # the same steps as a real run
    assert summary["step_time_split_s"]["index_s"] == 0.0  # no data work in the training phase
