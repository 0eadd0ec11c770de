"""The 3dgan and cms-jets workloads: their simulated data, the GAN's physics figure of merit and
the jets' ROC-AUC on known inputs, and 2-rank Gloo runs that reach the small presets' targets."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from itertools import product

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hpcscale import workloads  # noqa: E402
from hpcscale.data import tensors  # noqa: E402
from hpcscale.data.manifest import read_manifest  # noqa: E402
from hpcscale.errors import DataError  # noqa: E402
from hpcscale.workloads.gan3d import physics  # noqa: E402
from hpcscale.workloads.gan3d.showers import shower  # noqa: E402
from hpcscale.workloads.jets import roc  # noqa: E402
from hpcscale.workloads.jets.simulate import jet  # noqa: E402


@pytest.fixture(scope="module")
def showers(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gan") / "showers"
    workloads.generator("3dgan")(folder, 2400, seed=0, workers=2)
    return folder


@pytest.fixture(scope="module")
def jets(tmp_path_factory):
    folder = tmp_path_factory.mktemp("jets") / "jets"
    workloads.generator("cms-jets")(folder, 3000, seed=0, workers=2)
    return folder


# -- the figure of merit --------------------------------------------------------------------------
def test_shower_features_of_known_showers():
    images = torch.zeros(2, 25, 25, 25)
    images[0, 3, 4, 7] = 2.0  # one cell: depth 7, no spread
    images[1, 10, 12, 2] = 1.0  # two cells, 2 layers and 2 cells apart in x
    images[1, 12, 12, 4] = 1.0
    f = physics.shower_features(images, torch.tensor([100.0, 40.0]))
    names = dict(zip(physics.FEATURES, range(4), strict=True))
    assert f[0].tolist() == pytest.approx([0.02, 7.0, 0.0, 0.0], abs=1e-6)
    assert f[1, names["sampling_fraction"]] == pytest.approx(0.05)
    assert f[1, names["depth_mean"]] == pytest.approx(3.0)
    assert f[1, names["depth_rms"]] == pytest.approx(1.0)
    assert f[1, names["width_rms"]] == pytest.approx(1.0)  # σx = 1, σy = 0


def test_bin_sums_count_and_add_per_energy_bin():
    feats = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    sums = physics.bin_sums(feats, torch.tensor([20.0, 30.0, 450.0]), edges=(10, 50, 500))
    assert sums.tolist() == [[2.0, 4.0, 6.0], [1.0, 5.0, 6.0]]
    means = physics.bin_means(sums.numpy())
    assert means.tolist() == [[2.0, 3.0], [5.0, 6.0]]
    assert np.isnan(physics.bin_means(np.zeros((1, 3)))).all()  # an empty bin


def test_figure_of_merit_on_known_tables():
    real = np.array([[0.02, 8.0, 3.0, 1.5], [0.018, 10.0, 3.5, 1.8]])
    assert physics.figure_of_merit(real, real)[0] == 0.0
    fom, per = physics.figure_of_merit(real, real * 1.1)  # 10 % off everywhere
    assert fom == pytest.approx(0.1)
    assert per == pytest.approx(dict.fromkeys(physics.FEATURES, 0.1))
    off = real.copy()
    off[1, 0] *= 0.8  # the sampling fraction 20 % low in one of two bins
    fom, per = physics.figure_of_merit(real, off)
    assert fom == pytest.approx(0.2 / 8) and per["sampling_fraction"] == pytest.approx(0.1)
    gaps = np.vstack([real, np.full(4, np.nan)])  # an empty bin is left out
    assert physics.figure_of_merit(gaps, np.vstack([off, real[0]]))[0] == pytest.approx(0.025)
    assert np.isnan(physics.figure_of_merit(np.full((2, 4), np.nan), real)[0])
    with pytest.raises(ValueError, match="shapes"):
        physics.figure_of_merit(real, real[:1])


# -- ROC-AUC --------------------------------------------------------------------------------------
def _auc_by_pairs(labels: np.ndarray, scores: np.ndarray) -> float:
    """The reference: every positive-negative pair, ties counting one half."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    wins = sum((p > n) + 0.5 * (p == n) for p, n in product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_roc_auc_equals_the_pairwise_reference_with_ties():
    rng = np.random.default_rng(3)
    for n in (5, 40, 301):
        labels = (rng.random(n) < 0.4).astype(int)
        labels[:2] = [0, 1]
        scores = np.round(rng.random(n) + 0.3 * labels, 1)  # rounded: many ties
        assert roc.roc_auc(labels, scores) == pytest.approx(_auc_by_pairs(labels, scores))
        fpr, tpr = roc.roc_curve(labels, scores)
        assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1)
        area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))  # trapezoids
        assert area == pytest.approx(roc.roc_auc(labels, scores))


def test_roc_auc_known_values_and_bad_input():
    y = np.array([0, 0, 1, 1])
    assert roc.roc_auc(y, [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert roc.roc_auc(y, [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert roc.roc_auc(y, [0.5, 0.5, 0.5, 0.5]) == 0.5
    assert roc.roc_auc(y, [0.1, 0.4, 0.35, 0.8]) == 0.75
    with pytest.raises(ValueError, match="both classes"):
        roc.roc_auc([1, 1], [0.2, 0.3])
    fpr, _ = roc.thin(np.linspace(0, 1, 1000), np.linspace(0, 1, 1000), points=50)
    assert len(fpr) <= 50 and fpr[0] == 0 and fpr[-1] == 1


# -- the simulated data ---------------------------------------------------------------------------
def test_showers_have_the_seeds_properties(showers):
    manifest = read_manifest(showers, "calo3d")
    assert manifest.shape == (25, 25, 25) and manifest.count("val") == 240
    data = tensors.load_split(manifest, "train", range(400))
    occupancy = np.diff(data.offsets) / 25**3
    assert 0.15 < occupancy.mean() < 0.25  # "about 20 % of the cells"
    assert np.log10(data.value.max() / data.value[data.value > 0].min()) > 7
    energy = torch.from_numpy(data.scalars["energy"])
    assert energy.min() >= 10 and energy.max() <= 500
    f = physics.shower_features(torch.from_numpy(data.dense()), energy).numpy()
    low, high = energy.numpy() < 100, energy.numpy() > 350
    assert f[low, 0].mean() > f[high, 0].mean()  # sampling fraction falls with energy
    assert f[high, 1].mean() > f[low, 1].mean() + 1  # high energies peak deeper
    assert shower(7, 0).value.tolist() == shower(7, 0).value.tolist()
    assert shower(7, 0).value.size != shower(7, 1).value.size


def test_top_jets_differ_from_qcd_as_the_physics_does(jets):
    manifest = read_manifest(jets, "jets")
    data = tensors.load_split(manifest, "train", range(600))
    images, top = data.dense(), data.scalars["label"] == 1
    assert 0.4 < top.mean() < 0.6
    grid = np.arange(125) - 62
    r2 = grid[:, None] ** 2 + grid[None, :] ** 2
    pt = images[:, 0]
    width = (pt * r2).sum((1, 2)) / pt.sum((1, 2))  # pT-weighted spread: three prongs vs one
    assert np.median(width[top]) > 2 * np.median(width[~top])
    d0_top = images[top, 1][pt[top] > 2]  # |d0| of tracks above 2 GeV: displaced b decays
    d0_qcd = images[~top, 1][pt[~top] > 2]
    assert d0_top.mean() > 2 * d0_qcd.mean()
    assert jet(5, 0).scalars == jet(5, 0).scalars


def test_a_model_refuses_another_kind_of_data(showers, jets):
    spec = workloads.get("3dgan-small")
    with pytest.raises(
        DataError, match=r"cms-jets data \(jets\); this model trains on 3dgan data \(calo3d\)"
    ):
        spec.check(spec.Config(model="3dgan-small"), jets, 2, 8)
    assert spec.check(spec.Config(model="3dgan-small"), showers, 2, 8) == 2160


# -- 2-rank Gloo runs -----------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train_two_ranks(args: list[str]) -> dict:
    port = _free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "hpcscale.train", *args],
            env={
                **os.environ,
                "RANK": str(r),
                "WORLD_SIZE": "2",
                "LOCAL_RANK": str(r),
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": str(port),
                "OMP_NUM_THREADS": "1",
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in range(2)
    ]
    errors = [p.communicate(timeout=600)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    out = args[args.index("--out") + 1]
    with open(os.path.join(out, "summary.json")) as fh:
        return json.load(fh)


def test_3dgan_small_reaches_its_figure_of_merit_on_two_ranks(showers, tmp_path):
    s = _train_two_ranks(
        ["--model", "3dgan-small", "--data", str(showers), "--out", str(tmp_path / "job"),
         "--epochs", "6", "--ttl-window", "10", "--fom-every", "10", "--seed", "1"]
    )  # fmt: skip
    assert s["status"] == "completed" and s["stop_reason"] == "target", s.get("ttl_note")
    assert s["workload"] == "3dgan" and s["sample_unit"] == "showers"
    assert s["target_loss"] == 0.15 and s["final_smoothed_loss"] < 0.15
    assert s["ttl_s"] > s["dlt_s"] > 0 and s["samples_per_s"] > 0
    assert s["val_showers"] == 240 and s["val_fom"] < 0.5
    assert set(s["val_fom_per_feature"]) == set(physics.FEATURES)
    assert s["inference_ms_per_shower"] > 0 and s["simulation_ms_per_shower"] > 0
    assert {"d_loss", "g_loss"} <= {k[7:] for k in _sync_keys(tmp_path / "job")}
    assert s["config"]["batch"] == 8 and s["data"]["train_events"] == 2160
    assert s["report"]["quality"]["key"] == "val_fom"
    text = _report(tmp_path)
    assert "val FoM" in text and "inference ms/shower" in text and "figure of merit" in text
    assert (tmp_path / "report" / "curves0_local-job.png").exists()  # both networks' losses


def _report(tmp_path) -> str:
    """`hpcscale report` of the job folder: what the workload's summary declares."""
    pytest.importorskip("matplotlib")
    from hpcscale.analysis.report import build_report

    return build_report([tmp_path / "job"], tmp_path / "report").read_text()


def test_cms_jets_small_reaches_its_target_loss_on_two_ranks(jets, tmp_path):
    s = _train_two_ranks(
        ["--model", "cms-jets-small", "--data", str(jets), "--out", str(tmp_path / "job"),
         "--epochs", "8", "--batch", "32", "--ttl-window", "10"]
    )  # fmt: skip
    assert s["status"] == "completed" and s["stop_reason"] == "target", s.get("ttl_note")
    assert s["workload"] == "cms-jets" and s["target_loss"] == 0.4
    assert s["val_events"] == 300 and s["val_auc"] > 0.85
    fpr, tpr = s["roc"]["fpr"], s["roc"]["tpr"]
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1
    assert s["step_time_split_s"]["io_s"] > 0  # the seed's I/O time per batch
    assert s["config"]["batch"] == 32
    text = _report(tmp_path)
    assert "ROC-AUC" in text and "I/O per batch" in text
    assert (tmp_path / "report" / "xy0_local-job.png").exists()  # the ROC curve
    # one batch size: no "ROC-AUC vs batch size" (issue 31; a sweep draws it, test_new_user)
    assert "ROC-AUC vs batch size" not in text
    assert not (tmp_path / "report" / "versus_batch_val_auc.png").exists()


def _sync_keys(job) -> set[str]:
    from hpcscale.train.records import read_records

    rows = read_records(job / "rank-0.jsonl")
    return {k for r in rows if r["kind"] == "sync" for k in r if k.startswith("global_")}
