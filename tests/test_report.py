"""Scaling fits and the report, on synthetic timings and a fixture study."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import cli

from hpcscale.analysis.fit import fit_power_law

pytest.importorskip("matplotlib")
pytest.importorskip("scipy")


def test_fit_recovers_exponent_exactly_without_noise():
    n = np.array([1, 2, 4, 8, 16])
    law = fit_power_law(n, 300 * n**-0.7)
    assert law.exponent == pytest.approx(-0.7, abs=1e-9)
    assert law.prefactor == pytest.approx(300, rel=1e-9)
    assert law.bends is False


def test_interval_covers_truth_in_most_seeded_trials():
    n = np.array([32, 64, 128, 192, 256])
    covered, estimates = 0, []
    for seed in range(200):
        rng = np.random.default_rng(seed)
        y = 5.0 * n**0.9 * np.exp(rng.normal(0, 0.08, n.size))
        law = fit_power_law(n, y)
        estimates.append(law.exponent)
        covered += law.ci_low <= 0.9 <= law.ci_high
    assert 0.90 <= covered / 200 <= 0.99  # nominal 95 %
    assert np.mean(estimates) == pytest.approx(0.9, abs=0.02)


def test_bend_is_flagged_when_scaling_saturates():
    n = np.array([1, 2, 4, 8, 16, 32, 64])
    y = n / (1 + n / 8)  # linear, then flat: Amdahl-like saturation
    assert fit_power_law(n, y).bends is True


def test_too_few_points():
    assert fit_power_law([4], [1.0]) is None
    law = fit_power_law([1, 2], [10.0, 5.0])
    assert law.ci_low is None and "no interval" in law.text()


def _write_study(
    root: Path, sizes=(1, 2, 4, 8), fail: int = 8, model: str | None = None, name: str = "study"
) -> Path:
    """A study as `hpcscale submit` leaves it, with synthetic timings ∝ N^-0.7 / N^0.9.
    Without ``model``, its summaries are as they were before workloads (JishNet, images_per_s)."""
    study = root / name
    jobs = []
    for n in sizes:
        label = f"{n}g"
        folder = study / "jobs" / label
        folder.mkdir(parents=True)
        jobs.append(
            {
                "label": label,
                "gpus": n,
                "ranks": n,
                "nodes": 1,
                "walltime_s": 3600,
                "folder": f"jobs/{label}",
                "script": f"jobs/{label}/job.sh",
                "job_id": str(100 + n),
                "state": "completed",
            }
        )
        if n == fail:
            continue  # a job that never wrote anything: missing
        ttl, rate = 600 * n**-0.7, 0.5 * n**0.9
        lines = []
        for step in range(1, 60):
            t = 5 + step * ttl / 40
            loss = 1.61 - 0.5 * (1 - np.exp(-step / 20))
            lines.append(
                json.dumps(
                    {
                        "kind": "sync",
                        "step": step,
                        "t": t,
                        "global_loss": loss,
                        "smoothed_loss": loss if step > 5 else None,
                    }
                )
            )
        (folder / "rank-0.jsonl").write_text("\n".join(lines) + "\n")
        summary = {
            "status": "completed",
            "world_size": n,
            "dlt_s": 5.0 / n**0.2,
            "ttl_s": ttl,
            "epoch_rate_per_min": rate,
            "images_per_s": 10 * n,
            "val_accuracy": 0.6,
            "loss": "paper",
            "target_loss": 1.2,
            "stop_reason": "target",
            "confusion_percent": (np.eye(5) * 60 + 10).round(1).tolist(),
            "step_time_split_s": {
                "decompress_s": 0.01,
                "data_wait_s": 0.001,
                "h2d_s": 0.002,
                "compute_s": 0.08,
                "allreduce_s": 0.002 * n,
            },
            "config": {"model": model or "jishnet"},
            "provenance": {
                "torch": "2.x",
                "cuda": "13.0",
                "nccl": "2.27",
                "engine": "torch",
                "gpu": "NVIDIA H200",
                "image_digest": None,
            },
        }
        if model:  # a summary written since workloads became components
            summary["samples_per_s"] = summary.pop("images_per_s")
            summary.update(model=model, workload=model.split("-")[0], sample_unit="images")
            summary["step_time_split_s"].pop("decompress_s")
            summary["step_time_split_s"]["assemble_s"] = 0.004
            # the start-up timeline: staging shared by the ranks (∝ 1/N), the rest fixed
            parts = {"imports": 3.0, "device": 0.4, "staging": 4.0 / n, "build": 3.5}
            summary["dlt_parts_s"] = {**parts, "first_step": summary["dlt_s"] - sum(parts.values())}
            summary.update(
                ttl_train_s=ttl - summary["dlt_s"],
                steady_step_s=0.06,
                samples_per_s_steady=7 * n / 0.06,
                epoch_rate_steady_per_min=rate * 1.1,
            )
        (folder / "summary.json").write_text(json.dumps(summary))
    manifest = {
        "study": f"fixture-{name}",
        "site": "local",
        "site_digest": "ab" * 32,
        "scheduler": "local",
        "created": time.time(),
        "jobs": jobs,
    }
    (study / "manifest.json").write_text(json.dumps(manifest))
    return study


@pytest.mark.parametrize("fmt", ["md", "html"])
def test_report_renders_every_section(tmp_path, fmt):
    study = _write_study(tmp_path)
    res = subprocess.run(
        [sys.executable, "-m", "hpcscale", "report", str(study), "--format", fmt],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    out = study / "report"
    text = (out / f"report.{fmt}").read_text()
    for heading in (
        "Studies and provenance",
        "Scaling laws",
        "local jishnet — study fixture-study",
        "Reference: the paper",
    ):
        assert heading in text
    assert "did not complete" in text and "8g" in text  # the missing job is named
    results = json.loads((out / "results.json").read_text())
    fits = results["studies"][0]["fits"]
    assert fits["ttl"]["exponent"] == pytest.approx(-0.7, abs=1e-6)
    assert fits["epoch_rate"]["exponent"] == pytest.approx(0.9, abs=1e-6)
    assert results["paper"]["jishnet"]["beta"] == 0.9
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == 6
    import matplotlib.image as mpimg

    for png in pngs:
        assert png.name in text
        assert mpimg.imread(png).shape[:2] == (600, 960)


def test_report_of_missing_study_is_one_line(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "hpcscale", "report", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2 and "none: no such folder; give a study folder" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_report_shows_a_jishnet_and_an_scnet_study_side_by_side(tmp_path):
    dense = _write_study(tmp_path, model="jishnet", name="dense")
    sparse = _write_study(tmp_path, model="scnet", name="sparse")
    out = tmp_path / "both"
    res = cli("report", str(dense), str(sparse), "--out", str(out), "--format", "html")
    assert res.returncode == 0, res.stderr
    text = (out / "report.html").read_text()
    assert "local jishnet — study fixture-dense" in text
    assert "local scnet — study fixture-sparse" in text
    results = json.loads((out / "results.json").read_text())
    assert [r["workload"] for r in results["studies"]] == ["jishnet", "scnet"]
    assert all(r["jobs"][0]["samples_per_s"] == 10 for r in results["studies"])
    assert "images/s" in text
    # Where the time goes: DLT's parts and the steady state per job, each fitted against N.
    assert text.count("Where the time goes") == 2 and "steady images/s" in text
    fits = results["studies"][0]["fits"]
    assert fits["dlt_parts"]["staging"]["exponent"] == pytest.approx(-1.0)
    assert fits["dlt_parts"]["imports"]["exponent"] == pytest.approx(0.0, abs=1e-9)
    assert fits["samples_per_s_steady"]["exponent"] == pytest.approx(1.0)
    assert "-1.00 [-1.00, -1.00]" in text  # staging's exponent with its interval (3 sizes)
