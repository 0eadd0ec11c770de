"""Sparse tensor data sets: the LArTPC layout (HDF5 shards + a JSON manifest, written in
parallel and renamed into place) for any workload whose samples are mostly-zero tensors of one
fixed shape, such as calorimeter showers (25 × 25 × 25) or jet images (8 × 125 × 125).

A data set is a folder::

    manifest.json          format, version, kind, shape, scalars, seed, splits, files, generator
    train-00000.h5 ...     one HDF5 file per shard
    val-00000.h5 ...

Each HDF5 file holds, for its ``n`` samples::

    /offsets  int64  [n + 1]        sample i's non-zero cells are rows [offsets[i], offsets[i+1])
    /index    int16  [total, ndim]  the cells' coordinates in ``shape``
    /value    float32[total]        their values
    /<scalar> [n]                   one dataset per per-sample scalar (energy, label, …)
    attrs: format, version, kind

Sample ``i`` depends only on (seed, i), so a data set is the same for any number of workers.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hpcscale.data.pool import worker_pool
from hpcscale.errors import DataError
from hpcscale.fsutil import atomic_write

FORMAT = "hpcscale-sparse-tensor"
VERSION = 1


@dataclass(frozen=True)
class SparseSample:
    index: np.ndarray  # (k, ndim) coordinates of the non-zero cells
    value: np.ndarray  # (k,) their values
    scalars: dict[str, float]  # per-sample values, e.g. {"energy": 120.0} or {"label": 1}


# simulate(i, seed) → sample i of the data set with this seed
Simulator = Callable[[int, int], SparseSample]


@dataclass(frozen=True)
class TensorManifest:
    folder: Path
    kind: str
    shape: tuple[int, ...]
    scalars: dict[str, str]  # name → numpy dtype
    files: list[dict[str, Any]]  # {"name", "split", "events"}
    meta: dict[str, Any] = field(default_factory=dict)
    generator: dict[str, Any] = field(default_factory=dict)  # how it was made: seconds, rates

    def split(self, name: str) -> list[dict[str, Any]]:
        return [f for f in self.files if f["split"] == name]

    def count(self, split: str) -> int:
        return sum(f["events"] for f in self.split(split))


@dataclass
class SparseSet:
    """Samples of one split, flat: sample i's cells are rows offsets[i]:offsets[i+1]."""

    shape: tuple[int, ...]
    index: np.ndarray  # (total, ndim) int16
    value: np.ndarray  # (total,) float32
    offsets: np.ndarray  # (n + 1,) int64
    scalars: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def nbytes(self) -> int:
        return self.index.nbytes + self.value.nbytes + self.offsets.nbytes

    def dense_into(self, idx: Sequence[int], out: np.ndarray) -> None:
        """Write samples ``idx`` densely into ``out`` (shape ``(len(idx), *shape)``)."""
        out[: len(idx)] = 0
        starts, ends = self.offsets[idx], self.offsets[np.asarray(idx) + 1]
        rows = np.concatenate([np.arange(a, b) for a, b in zip(starts, ends, strict=True)])
        which = np.repeat(np.arange(len(idx)), ends - starts)
        out[(which, *self.index[rows].T)] = self.value[rows]

    def dense(self, idx: Sequence[int] | None = None) -> np.ndarray:
        idx = np.arange(len(self)) if idx is None else np.asarray(idx)
        out = np.empty((len(idx), *self.shape), dtype=np.float32)
        if len(idx):
            self.dense_into(idx, out)
        return out


def write_shard(path: Path, kind: str, samples: Sequence[SparseSample], scalars: dict) -> None:
    """One HDF5 shard of ``samples``, written atomically."""
    import h5py

    counts = np.array([s.value.size for s in samples], dtype=np.int64)
    ndim = samples[0].index.shape[1] if samples else 0
    tmp = path.with_name(f".{path.name}.tmp")
    with h5py.File(tmp, "w") as f:
        f.attrs.update(format=FORMAT, version=VERSION, kind=kind)
        f["offsets"] = np.concatenate([[0], np.cumsum(counts)])
        f["index"] = np.concatenate([s.index for s in samples]).astype(np.int16).reshape(-1, ndim)
        f["value"] = np.concatenate([s.value for s in samples]).astype(np.float32)
        for name, dtype in scalars.items():
            f[name] = np.array([s.scalars[name] for s in samples], dtype=dtype)
    tmp.replace(path)


def read_manifest(folder: Path, kind: str | None = None) -> TensorManifest:
    """The manifest of a sparse tensor data set; ``kind`` (e.g. "calo3d"): the one expected."""
    path = Path(folder) / "manifest.json"
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        hint = f" --workload {kind}" if kind else ""
        raise DataError(
            f"{path}: no such file; create a data set with `hpcscale data generate{hint} "
            f"--out {folder}`"
        ) from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if raw.get("format") != FORMAT or raw.get("version") != VERSION:
        raise DataError(
            f"{path}: format {raw.get('format')!r} version {raw.get('version')!r}; expected "
            f"{FORMAT!r} version {VERSION} (a {kind or 'sparse tensor'} data set)"
        )
    if kind is not None and raw.get("kind") != kind:
        raise DataError(f"{path}: a {raw.get('kind')!r} data set; this model trains on {kind!r}")
    try:
        return TensorManifest(
            Path(folder), str(raw["kind"]), tuple(int(s) for s in raw["shape"]),
            dict(raw["scalars"]), list(raw["files"]), dict(raw.get("meta") or {}),
            dict(raw.get("generator") or {}),
        )  # fmt: skip
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{path}: missing or malformed field {exc}") from None


def check_files(manifest: TensorManifest) -> None:
    missing = [f["name"] for f in manifest.files if not (manifest.folder / f["name"]).is_file()]
    if missing:
        raise DataError(
            f"{manifest.folder / missing[0]}: no such file (listed in manifest.json; "
            f"{len(missing)} of {len(manifest.files)} shards missing)"
        )


def load_split(manifest: TensorManifest, split: str, select: Sequence[int]) -> SparseSet:
    """The samples of ``split`` whose position in the split is in ``select``, in that order."""
    import h5py

    wanted = np.asarray(sorted(select), dtype=np.int64)
    parts: dict[str, list[np.ndarray]] = {"index": [], "value": [], "count": []}
    scalars: dict[str, list[np.ndarray]] = {name: [] for name in manifest.scalars}
    first, ndim = 0, len(manifest.shape)
    for entry in manifest.split(split):
        path, n = manifest.folder / entry["name"], int(entry["events"])
        local = wanted[(wanted >= first) & (wanted < first + n)] - first
        first += n
        if local.size == 0:
            continue
        try:
            with h5py.File(path, "r") as f:
                offsets = f["offsets"][...]
                if offsets.shape != (n + 1,) or f["index"].shape[1:] != (ndim,):
                    raise DataError(f"{path}: offsets or index do not match the manifest")
                index, value = f["index"][...], f["value"][...]
                for name in manifest.scalars:
                    scalars[name].append(f[name][...][local])
        except FileNotFoundError:
            raise DataError(f"{path}: no such file (listed in manifest.json)") from None
        except (OSError, KeyError) as exc:
            raise DataError(f"{path}: unreadable shard, truncated or corrupt ({exc})") from None
        rows = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in local])
        parts["index"].append(index[rows])
        parts["value"].append(value[rows])
        parts["count"].append(offsets[local + 1] - offsets[local])
    counts = np.concatenate(parts["count"]) if parts["count"] else np.zeros(0, np.int64)
    idx = np.concatenate(parts["index"]) if parts["index"] else np.zeros((0, ndim), np.int16)
    if idx.size and (idx.min() < 0 or (idx >= np.array(manifest.shape)).any()):
        raise DataError(f"{manifest.folder}: a cell lies outside the shape {manifest.shape}")
    return SparseSet(
        shape=manifest.shape,
        index=idx.astype(np.int16),
        value=np.concatenate(parts["value"]).astype(np.float32) if parts["value"] else
        np.zeros(0, np.float32),
        offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        scalars={
            k: np.concatenate(v) if v else np.zeros(0, manifest.scalars[k])
            for k, v in scalars.items()
        },
    )  # fmt: skip


def _write(
    name: str, first: int, n: int, folder: str, kind: str, scalars: dict, simulate: Simulator,
    seed: int,
) -> tuple[str, int, int]:  # fmt: skip
    samples = [simulate(first + i, seed) for i in range(n)]
    path = Path(folder) / name
    write_shard(path, kind, samples, scalars)
    return name, n, path.stat().st_size


def generate(
    out: Path,
    n_events: int,
    *,
    kind: str,
    shape: tuple[int, ...],
    scalars: dict[str, str],
    simulate: Simulator,
    seed: int = 0,
    workers: int | None = None,
    val_fraction: float = 0.1,
    per_file: int = 256,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
    meta: dict[str, Any] | None = None,
) -> dict:
    """Simulate ``n_events`` samples into ``out`` in parallel; returns the manifest.
    ``simulate`` must be picklable (a module-level function or a partial of one)."""
    if n_events < 1:
        raise DataError(f"--events must be at least 1 (got {n_events})")
    if not 0 <= val_fraction < 1:
        raise DataError(f"--val-fraction must be in [0, 1) (got {val_fraction})")
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not force:
        raise DataError(f"{out}: folder exists and is not empty; use --force to replace it")
    workers = workers or os.cpu_count() or 1
    n_val = round(n_events * val_fraction) if n_events > 1 else 0
    shards = []
    for split, lo, hi in (("train", 0, n_events - n_val), ("val", n_events - n_val, n_events)):
        for k, start in enumerate(range(lo, hi, per_file)):
            shards.append((f"{split}-{k:05d}.h5", split, start, min(per_file, hi - start)))
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    tmp.mkdir(parents=True)
    start = time.perf_counter()
    sizes: dict[str, int] = {}
    try:
        with worker_pool(workers) as pool:
            futures = [
                pool.submit(_write, name, first, n, str(tmp), kind, scalars, simulate, seed)
                for name, _, first, n in shards
            ]
            for fut in as_completed(futures):
                name, n, size = fut.result()
                sizes[name] = size
                if progress:
                    progress(n)
        elapsed = time.perf_counter() - start
        manifest = {
            "format": FORMAT, "version": VERSION, "kind": kind, "shape": list(shape),
            "scalars": scalars, "seed": seed, "events": n_events,
            "splits": {"train": n_events - n_val, "val": n_val},
            "files": [
                {"name": name, "split": split, "events": n, "bytes": sizes[name]}
                for name, split, _, n in shards
            ],
            "meta": meta or {},
            "generator": {
                "workers": workers, "seconds": round(elapsed, 3),
                "events_per_s": round(n_events / elapsed, 2),
                "events_per_s_per_core": round(n_events / elapsed / workers, 2),
            },
        }  # fmt: skip
        atomic_write(tmp / "manifest.json", json.dumps(manifest, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        tmp.replace(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest
