"""Predicting larger runs and checking figures: the α–β allreduce model against hand-computed
cases, `hpcscale predict` and `hpcscale check` on a study made here (jishnet-small, tiny data,
1 and 2 ranks on this machine)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
from conftest import cli, tiny_events

from hpcscale.analysis import predict as model
from hpcscale.analysis.comm import LinkCost, allreduce_s, fit_link, ring_s, tree_s
from hpcscale.analysis.measured import Measured

MB = 1e6
NVLINK = LinkCost(bandwidth_gbs=40, latency_us=8)  # 4e10 B/s, 8e-6 s
IB = LinkCost(bandwidth_gbs=12.5, latency_us=10)  # 1.25e10 B/s, 1e-5 s


def test_ring_and_tree_by_hand():
    # ring, 4 ranks, 100 MB: 2·3·8 µs + 2·3/4 · 1e8/4e10 s = 48 µs + 3.75 ms
    assert ring_s(100 * MB, 4, NVLINK) == pytest.approx(48e-6 + 3.75e-3)
    # tree, 4 ranks: 2·⌈log2 4⌉ (8 µs + 2.5 ms) = 4 · 2.508 ms
    assert tree_s(100 * MB, 4, NVLINK) == pytest.approx(4 * 2.508e-3)
    # a small message: the tree's fewer latencies win; "best" takes it
    assert tree_s(1e3, 64, IB) < ring_s(1e3, 64, IB)
    assert allreduce_s(1e3, 64, 1, None, IB) == pytest.approx(tree_s(1e3, 64, IB))
    assert allreduce_s(100 * MB, 1, 4, NVLINK, IB) == 0.0


def test_hierarchical_allreduce_by_hand():
    # 8 ranks on 2 nodes of 4: intra reduce-scatter + all-gather, 2 × (3·8 µs + 3/4 · 1e8/4e10),
    # then a 2-node ring on 25 MB: 2·1·10 µs + 2·1/2 · 2.5e7/1.25e10
    intra = 2 * (3 * 8e-6 + 0.75 * 1e8 / 4e10)
    inter = 2 * 1e-5 + 1.0 * 2.5e7 / 1.25e10
    got = allreduce_s(100 * MB, 8, 4, NVLINK, IB, algorithm="ring")
    assert got == pytest.approx(intra + inter)
    with pytest.raises(ValueError, match="inter-node"):
        allreduce_s(100 * MB, 8, 4, NVLINK, None)


def test_a_link_fitted_to_measured_times_gives_them_back():
    link = LinkCost(bandwidth_gbs=2.0, latency_us=30)
    points = [(p, ring_s(10 * MB, p, link)) for p in (2, 3, 4)]
    fitted = fit_link(points, 10 * MB)
    assert fitted is not None
    assert fitted.bandwidth_gbs == pytest.approx(2.0, rel=1e-6)
    assert fitted.latency_us == pytest.approx(30, rel=1e-6)
    one = fit_link([(2, 0.01)], 10 * MB)  # one size: bandwidth only
    assert one is not None and one.latency_us == 0
    assert ring_s(10 * MB, 2, one) == pytest.approx(0.01)
    assert fit_link([(1, 0.001)], 10 * MB) is None  # one rank: nothing crossed a link


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    """A real study here: jishnet-small, 1 and 2 ranks, a target every job reaches."""
    tmp = tmp_path_factory.mktemp("predict")
    events = tiny_events(tmp / "events", 80, seed=5)
    folder = tmp / "study"
    res = cli("submit", "--site", "local", "--ranks", "1,2", "--data", str(events), "--model",
              "jishnet-small", "--epochs", "2", "--study", str(folder), "--target-loss", "5",
              "--ttl-window", "2", "--no-stop-at-target", cwd=tmp)  # fmt: skip
    assert res.returncode == 0, res.stderr
    return folder


def test_predict_a_larger_size_of_a_study_made_here(study):
    res = cli("predict", str(study), "--ranks", "4,8", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["measured_sizes"] == [1, 2]
    # The 2-rank job measured the noise scale's parts (few steps of tiny batches: its |G|² may
    # not be resolved; then B_noise is fitted to the steps both sizes took to the target, and
    # where no fit exists the prediction takes the samples to the target as fixed)
    noise = json.loads((study / "jobs" / "2r" / "summary.json").read_text())["noise"]
    assert (noise["b"], noise["big_b"]) == (7, 14) and noise["steps"] > 0
    assert out["b_noise_source"] in (
        "measured in the jobs' gradients",
        "fitted to the steps the measured sizes took",
        "none: samples to the target taken as constant",
    )
    if out["b_noise_source"].startswith(("measured", "fitted")):
        assert out["b_noise"] > 0 and out["s_min"] > 0
    four, eight = out["sizes"]
    assert (four["n"], four["global_batch"]) == (4, 4 * 7)  # jishnet-small's batch per rank: 7
    for row in (four, eight):
        assert row["ttl_s"] >= row["dlt_s"] > 0 and row["step_s"] > row["allreduce_s"] >= 0
        assert row["steps"] >= 1 and row["assumption"]
        for key in ("dlt_s", "step_s", "ttl_s", "epoch_rate_per_min"):
            lo, hi = row[f"{key}_interval"]
            assert lo <= hi and math.isfinite(lo)
    assert eight["steps"] <= four["steps"]  # a larger batch never needs more steps
    text = cli("predict", str(study), "--ranks", "4")
    assert text.returncode == 0 and "assumes:" in text.stdout and "N=4" in text.stdout


def test_predict_for_another_site_names_its_compute_ratio(study):
    res = cli("predict", str(study), "--gpus", "8", "--site", "summitdev", "--bench-ratio", "0.5")
    assert res.returncode == 0, res.stderr
    assert "the measured bench ratio" in res.stdout and "N=8 (2 nodes" in res.stdout
    bad = cli("predict", str(study), "--gpus", "8", "--site", "summitdev")  # CPU study: no peak
    assert bad.returncode == 2 and "--bench-ratio" in bad.stderr


def test_check_passes_a_study_against_itself_and_fails_a_slower_copy(study, tmp_path):
    res = cli("check", str(study), "--against", str(study))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "within bounds" in res.stdout
    slow = tmp_path / "slow"
    shutil.copytree(study, slow)
    for summary in slow.glob("jobs/*/summary.json"):
        data = json.loads(summary.read_text())
        data["ttl_s"] *= 1.5
        data["epoch_rate_per_min"] /= 1.5
        summary.write_text(json.dumps(data))
    res = cli("check", str(slow), "--against", str(study))
    assert res.returncode == 1
    lines = res.stdout.splitlines()
    assert len(lines) == 4  # ttl_s and epoch rate, at both sizes
    assert all("reference" in line and str(study) in line for line in lines)
    assert any(line.startswith("jishnet-small N=2 ttl_s") for line in lines)


def test_check_against_a_references_file(study, tmp_path):
    rate = json.loads((study / "jobs" / "2r" / "summary.json").read_text())["epoch_rate_per_min"]
    refs = tmp_path / "refs.yaml"
    refs.write_text(
        f"local:\n  jishnet-small:\n    2:\n      epoch_rate_per_min: [{rate}, -0.1, null]\n"
    )
    assert cli("check", str(study), "--references", str(refs)).returncode == 0
    refs.write_text(
        f"local:\n  jishnet-small:\n    2:\n      epoch_rate_per_min: [{rate * 2}, -0.1, null]\n"
    )
    res = cli("check", str(study), "--references", str(refs))
    assert res.returncode == 1 and "epoch_rate_per_min" in res.stdout
    refs.write_text("local:\n  jishnet-small:\n    2:\n      speed: [1, 0, 0]\n")
    res = cli("check", str(study), "--references", str(refs))
    assert res.returncode == 2 and "unknown figure" in res.stderr


def test_check_against_the_descriptors_references(study, tmp_path):
    rate = json.loads((study / "jobs" / "1r" / "summary.json").read_text())["epoch_rate_per_min"]
    bundled = (Path(__file__).resolve().parent.parent / "sites" / "local.yaml").read_text()
    sites = tmp_path / "sites"
    sites.mkdir()
    for factor, code in ((1.0, 0), (3.0, 1)):
        figure = f"{{epoch_rate_per_min: [{rate * factor}, -0.2, null]}}"
        refs = f"  references:\n    jishnet-small:\n      1: {figure}\n"
        (sites / "local.yaml").write_text(bundled + "performance:\n" + refs)
        res = cli("check", str(study), "--sites-dir", str(sites))
        assert res.returncode == code, res.stdout + res.stderr
    assert "site local's performance.references" in res.stdout
    assert cli("check", str(study)).returncode == 2  # the bundled local site has none


def test_the_report_draws_predicted_beside_measured_and_says_where_efficiency_went(study):
    res = cli("report", str(study), "--out", str(study.parent / "report"))
    assert res.returncode == 0, res.stderr
    text = (study.parent / "report" / "report.md").read_text()
    assert "Predicted beside measured" in text and "| 2 | 1 |" in text
    assert "Where efficiency went" in text and "N=2: TTL efficiency" in text
    assert list((study.parent / "report").glob("predicted_*.png"))


def _job(n: int, step: float, ttl_steps: int) -> Measured:
    return Measured(
        label=f"{n}g", n=n, nodes=1, batch=7, train_samples=2800, steps=ttl_steps,
        ttl_steps=ttl_steps, dlt_s=10.0, dlt_parts={}, step_s=step, allreduce_s=0.0,
        first_step_s=1.0, gradient_bytes=None, precision=None, data_bytes=None,
    )  # fmt: skip


def test_steps_and_contention_by_hand():
    # S = S_min(1 + B_noise/B) with S_min = 100, B_noise = 14: 300 steps at B = 7, 200 at 14
    jobs = [_job(1, 0.10, 300), _job(2, 0.11, 200)]
    fitted = model.fit_model(jobs)
    assert fitted.b_noise == pytest.approx(14) and fitted.s_min == pytest.approx(100)
    assert fitted.contention_s == pytest.approx(0.01)  # 10 ms per extra rank on the node
    here = model.Target(None, 8, 1.0, "here")
    four = model.predict_size(fitted, here, 4)
    assert four["steps"] == pytest.approx(150)  # 100 · (1 + 14/28)
    assert four["step_s"] == pytest.approx(0.11 + 2 * 0.01)  # no link measured: no allreduce
    assert four["ttl_s"] == pytest.approx(10.0 + 149 * 0.13)
    there = model.Target(None, 8, 2.0, "twice as slow")  # another site: no contention carried
    assert model.predict_size(fitted, there, 4)["step_s"] == pytest.approx(0.22)
