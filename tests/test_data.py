"""Events on disk and in the Blosc store: deterministic, bit-identical, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys

import h5py
import numpy as np
import pytest

from hpcscale.data import files
from hpcscale.data.generate import generate
from hpcscale.data.manifest import (
    LArTPCManifest,
    TensorManifest,
    is_data_manifest,
    kind_of,
    read_manifest,
)
from hpcscale.data.simulate import CLASSES
from hpcscale.data.store import Codec, EventStore, load_shard, shard_indices
from hpcscale.errors import DataError

R = 300


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data") / "events"
    generate(folder, 60, resolution=R, seed=3, workers=2, per_file=16)
    return folder


def _arrays(folder, split="train"):
    return list(files.iter_events(read_manifest(folder, "lartpc"), split))


def test_manifest_and_splits(dataset):
    manifest = json.loads((dataset / "manifest.json").read_text())
    assert manifest["format"] == files.FORMAT and manifest["resolution"] == R
    assert manifest["classes"] == list(CLASSES)
    assert manifest["splits"] == {"train": 54, "val": 6}
    assert sum(manifest["label_counts"]) == 60 and min(manifest["label_counts"]) == 12
    for entry in manifest["files"]:
        with h5py.File(dataset / entry["name"]) as f:
            assert f["offsets"].shape == (entry["events"] + 1,)
            assert f.attrs["format"] == files.FORMAT


def test_deterministic_for_any_worker_count(dataset, tmp_path):
    other = tmp_path / "one-worker"
    generate(other, 60, resolution=R, seed=3, workers=1, per_file=7)
    for a, b in zip(_arrays(dataset), _arrays(other), strict=True):
        assert a[0] == b[0]
        for x, y in zip(a[1:], b[1:], strict=True):
            np.testing.assert_array_equal(x, y)


def test_events_have_physics_shapes(dataset):
    """μ+ tracks are long, K+ and γ/e± compact; every event has charge inside the image."""
    extent: dict[int, list[float]] = {k: [] for k in range(5)}
    for label, wire, tick, charge in _arrays(dataset):
        assert charge.size > 0 and (charge >= 0).all()
        assert wire.max() < R and tick.max() < R
        big = charge > 0.3
        extent[label].append(np.hypot(np.ptp(wire[big]), np.ptp(tick[big])))
    assert np.median(extent[2]) > np.median(extent[0])  # μ+ longer than γ showers


def test_store_is_bit_identical(dataset):
    manifest = read_manifest(dataset, "lartpc")
    for codec in (Codec(), Codec(cname="zstd", clevel=9, shuffle="bit")):
        store = EventStore(R, codec)
        dense = []
        for label, wire, tick, charge in files.iter_events(manifest, "train", range(8)):
            img = np.zeros((R, R), np.float32)
            img[wire, tick] = charge
            dense.append(img)
            store.add(label, wire, tick, charge)
        for i, img in enumerate(dense):
            assert store.image(i).tobytes() == img.tobytes()
        assert store.compressed_nbytes < 8 * store.image_nbytes / 20


def test_shards_partition_the_set(dataset):
    parts = [set(shard_indices(54, r, 4)) for r in range(4)]
    assert set().union(*parts) == set(range(54)) and sum(map(len, parts)) == 54
    store, stats = load_shard(dataset, "train", 1, 4)
    assert len(store) == len(parts[1]) and stats.total_events == 54 and stats.ratio > 20


def test_missing_file_names_it(dataset, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text((dataset / "manifest.json").read_text())
    with pytest.raises(DataError, match=r"broken/train-00000\.h5: no such file"):
        load_shard(broken, "train", 0, 1)


def test_truncated_file_names_it(dataset, tmp_path):
    copy = tmp_path / "trunc"
    subprocess.run(["cp", "-r", str(dataset), str(copy)], check=True)
    victim = copy / "train-00001.h5"
    victim.write_bytes(victim.read_bytes()[:3000])
    with pytest.raises(DataError, match=r"train-00001\.h5: unreadable HDF5 file") as info:
        load_shard(copy, "train", 0, 1)
    assert "\n" not in str(info.value)


def test_wrong_shape_names_dataset(dataset, tmp_path):
    copy = tmp_path / "shape"
    subprocess.run(["cp", "-r", str(dataset), str(copy)], check=True)
    with h5py.File(copy / "train-00000.h5", "a") as f:
        del f["wire"]
        f["wire"] = np.zeros((3, 3), np.int16)
    with pytest.raises(DataError, match=r"train-00000\.h5: /wire has shape \(3, 3\)"):
        load_shard(copy, "train", 0, 1)


def test_missing_manifest_says_how_to_make_one(tmp_path):
    with pytest.raises(DataError, match="hpcscale data generate"):
        load_shard(tmp_path, "train", 0, 1)


def test_generate_cli_and_refuses_overwrite(tmp_path):
    out = tmp_path / "ev"
    cmd = [
        sys.executable,
        "-m",
        "hpcscale",
        "data",
        "generate",
        "--events",
        "10",
        "--resolution",
        "300",
        "--out",
        str(out),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0 and "events/s" in res.stdout
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 2 and "use --force" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_sparse_and_whole_shard_reads_agree(dataset):
    """A rank of a large job reads single events; a small job whole datasets: same bytes."""
    manifest = read_manifest(dataset, "lartpc")
    every = list(files.iter_events(manifest, "train"))
    picked = [0, 17, 40]  # one event per 16-event shard: the per-event path
    for index, (label, wire, tick, charge) in zip(
        picked, files.iter_events(manifest, "train", picked), strict=True
    ):
        assert label == every[index][0]
        for x, y in zip((wire, tick, charge), every[index][1:], strict=True):
            np.testing.assert_array_equal(x, y)


def _json(folder, data) -> object:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps(data))
    return folder / "manifest.json"


def test_a_data_manifest_has_a_kind_and_a_studys_is_not_one(dataset, tmp_path):
    manifest = read_manifest(dataset)
    assert isinstance(manifest, LArTPCManifest) and manifest.kind == "lartpc"
    assert manifest.resolution == R and manifest.count("train") == 54
    assert manifest.generator["workers"] == 2
    assert json.loads((dataset / "manifest.json").read_text())["kind"] == "lartpc"
    # a data set written before the kind field: its format says what it is
    old = json.loads((dataset / "manifest.json").read_text())
    del old["kind"]
    assert kind_of(old) == "lartpc" and is_data_manifest(_json(tmp_path / "old", old))
    assert read_manifest(tmp_path / "old", "lartpc").kind == "lartpc"
    tensor = {
        "format": "hpcscale-sparse-tensor", "version": 1, "kind": "jets", "shape": [8, 125, 125],
        "scalars": {"label": "int8"}, "files": [{"name": "train-00000.h5", "split": "train",
        "events": 4}], "meta": {"channels": ["track_pt"]},
    }  # fmt: skip
    jets = read_manifest(_json(tmp_path / "jets", tensor).parent, "jets")
    assert isinstance(jets, TensorManifest) and (jets.kind, jets.shape) == ("jets", (8, 125, 125))
    assert jets.meta == {"channels": ["track_pt"]} and jets.count("train") == 4
    with pytest.raises(
        DataError,
        match=r"holds cms-jets data \(jets\); this model trains on jishnet data \(lartpc\)",
    ):
        read_manifest(tmp_path / "jets", "lartpc")
    study = {"study": "s", "site": "local", "site_digest": "0" * 64, "scheduler": "local",
             "created": 0.0, "kind": "scaling", "jobs": []}  # fmt: skip
    assert kind_of(study) is None and not is_data_manifest(_json(tmp_path / "study", study))
    assert not is_data_manifest(tmp_path / "nowhere" / "manifest.json")
    (tmp_path / "study" / "manifest.json").write_text("{not json")
    assert not is_data_manifest(tmp_path / "study" / "manifest.json")


def test_a_bad_data_manifest_is_one_line_naming_the_field(dataset, tmp_path):
    raw = json.loads((dataset / "manifest.json").read_text())
    raw["files"][0]["split"] = "test"
    _json(tmp_path / "bad", raw)
    with pytest.raises(DataError, match=r"manifest\.json: .*files\.0\.split") as info:
        read_manifest(tmp_path / "bad", "lartpc")
    assert "\n" not in str(info.value)
    raw["format"] = "something-else"
    _json(tmp_path / "bad", raw)
    with pytest.raises(DataError, match="expected 'hpcscale-lartpc-sparse' version 1"):
        read_manifest(tmp_path / "bad", "lartpc")
