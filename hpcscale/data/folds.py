"""K-fold cross-validation data: every event of a data set (both splits) in exactly one of K
folds, and one data set per fold whose validation split is that fold and whose training split is
the other K − 1.

The split is deterministic (a seeded permutation dealt round-robin: fold sizes differ by at most
one) and the same for every workload: both data formats (``files``: LArTPC events, ``tensors``:
showers, jets) are HDF5 shards listed in a ``manifest.json`` with per-event datasets and
per-deposit datasets cut by ``/offsets``. Each fold's events are written once, as
``FOLDS/parts/fold-<i>.h5``; the fold data set ``FOLDS/fold-<i>/`` is a copy of the source's
manifest listing those parts (symbolic links) with the splits reassigned. The workloads read a
fold's data set as any other: nothing in the training core knows about folds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from hpcscale.data.manifest import read_manifest
from hpcscale.errors import DataError
from hpcscale.fsutil import atomic_write

# The per-deposit datasets of the two formats (LArTPC: wire, tick, charge; tensors: index,
# value); every other dataset but /offsets holds one row per event.
DEPOSITS = {"wire", "tick", "charge", "index", "value"}


def assign(n: int, k: int, seed: int = 0) -> np.ndarray:
    """The fold (0 … k−1) of each of ``n`` events: a permutation seeded by ``seed``, dealt
    round-robin, so folds are disjoint, cover every event and differ in size by at most one."""
    if k < 2:
        raise DataError(f"--kfold {k}: K-fold needs at least 2 folds")
    if n < k:
        raise DataError(f"--kfold {k}: the data set has {n} events, fewer than {k} folds")
    order = np.random.default_rng(seed).permutation(n)
    folds = np.empty(n, dtype=np.int64)
    folds[order] = np.arange(n) % k
    return folds


def fold_sets(data: Path, k: int, out: Path, seed: int = 0) -> list[Path]:
    """Write (once) the ``k`` fold data sets of ``data`` under ``out``; their folders, in fold
    order. A folder already made for the same source, K and seed is reused."""
    data, out = Path(data), Path(out)
    source = _manifest(data)
    key = {"source": str(data.resolve()), "k": k, "seed": seed}
    done = out / "folds.json"
    folders = [out / f"fold-{i}" for i in range(k)]
    if done.exists() and json.loads(done.read_text()).get("key") == key:
        return folders
    shards = [(f, f["split"]) for split in ("train", "val") for f in source["files"]
              if f["split"] == split]  # fmt: skip
    n = sum(int(f["events"]) for f, _ in shards)
    folds = assign(n, k, seed)
    parts = out / "parts"
    parts.mkdir(parents=True, exist_ok=True)
    counts = _write_parts(data, [f for f, _ in shards], folds, k, parts)
    for i, folder in enumerate(folders):
        folder.mkdir(parents=True, exist_ok=True)
        files = []
        for j in range(k):
            name = f"fold-{j}.h5"
            link = folder / name
            if link.is_symlink() or link.exists():
                link.unlink()
            os.symlink(os.path.join("..", "parts", name), link)
            files.append({"name": name, "split": "val" if j == i else "train",
                          "events": int(counts[j])})  # fmt: skip
        manifest = {
            **source,
            "files": files,
            "splits": {"train": int(n - counts[i]), "val": int(counts[i])},
            "kfold": {**key, "fold": i},
        }
        atomic_write(folder / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    atomic_write(done, json.dumps({"key": key, "events": n, "sizes": counts.tolist()}) + "\n")
    return folders


def _manifest(data: Path) -> dict[str, Any]:
    """The source data set's manifest as written (any kind), after ``read_manifest`` checked it."""
    path = data / "manifest.json"
    if not path.is_file():
        raise DataError(f"{path}: no such file; --kfold needs a data set on this machine")
    read_manifest(data)
    return json.loads(path.read_bytes())


def _write_parts(
    data: Path, shards: list[dict[str, Any]], folds: np.ndarray, k: int, parts: Path
) -> np.ndarray:
    """Each fold's events, gathered from every shard in order, as one HDF5 file per fold."""
    import h5py

    pieces: list[list[dict[str, np.ndarray]]] = [[] for _ in range(k)]
    attrs: dict[str, Any] = {}
    first = 0
    for entry in shards:
        path = data / entry["name"]
        n = int(entry["events"])
        try:
            with h5py.File(path, "r") as f:
                attrs = dict(f.attrs)
                offsets = f["offsets"][...]
                arrays = {name: f[name][...] for name in f if name != "offsets"}
        except OSError as exc:
            raise DataError(f"{path}: unreadable HDF5 file ({exc})") from None
        if offsets.shape[0] != n + 1:
            raise DataError(f"{path}: manifest says {n} events, /offsets has {offsets.shape[0]}")
        for j in range(k):
            idx = np.flatnonzero(folds[first : first + n] == j)
            if idx.size:
                pieces[j].append(_take(arrays, offsets, idx))
        first += n
    counts = np.zeros(k, dtype=np.int64)
    for j in range(k):
        counts[j] = sum(p["__events__"].item() for p in pieces[j])
        _write(parts / f"fold-{j}.h5", pieces[j], attrs)
    return counts


def _take(arrays: dict[str, np.ndarray], offsets: np.ndarray, idx: np.ndarray) -> dict:
    """Events ``idx`` of one shard: per-event rows, and their deposits with new offsets."""
    sizes = offsets[idx + 1] - offsets[idx]
    rows = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in idx]) if idx.size else []
    out = {name: (a[rows] if name in DEPOSITS else a[idx]) for name, a in arrays.items()}
    out["__sizes__"] = sizes
    out["__events__"] = np.array(idx.size)
    return out


def _write(path: Path, pieces: list[dict[str, np.ndarray]], attrs: dict[str, Any]) -> None:
    import h5py

    tmp = path.with_name(f".{path.name}.tmp")
    names = [n for n in (pieces[0] if pieces else {}) if not n.startswith("__")]
    sizes = np.concatenate([p["__sizes__"] for p in pieces]) if pieces else np.zeros(0)
    with h5py.File(tmp, "w") as f:
        f.attrs.update(attrs)
        f["offsets"] = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        for name in names:
            f[name] = np.concatenate([p[name] for p in pieces])
    tmp.replace(path)
