"""Sparse tensor data sets: the LArTPC layout (HDF5 shards + a JSON manifest, written in
parallel and renamed into place) for any workload whose samples are mostly-zero tensors of one
fixed shape, such as calorimeter showers (25 × 25 × 25) or jet images (8 × 125 × 125).

A data set is a folder (its manifest: ``data/manifest.py``, ``TensorManifest``)::

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

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from hpcscale.data.manifest import TENSOR_FORMAT as FORMAT
from hpcscale.data.manifest import VERSION, TensorManifest
from hpcscale.data.shards import ShardPlan, check_request, plan, write_dataset
from hpcscale.errors import DataError


@dataclass(frozen=True)
class SparseSample:
    index: np.ndarray  # (k, ndim) coordinates of the non-zero cells
    value: np.ndarray  # (k,) their values
    scalars: dict[str, float]  # per-sample values, e.g. {"energy": 120.0} or {"label": 1}


# simulate(i, seed) → sample i of the data set with this seed
Simulator = Callable[[int, int], SparseSample]


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
    shard: ShardPlan, folder: str, kind: str, scalars: dict, simulate: Simulator, seed: int
) -> int:
    samples = [simulate(shard.first + i, seed) for i in range(shard.count)]
    path = Path(folder) / shard.name
    write_shard(path, kind, samples, scalars)
    return path.stat().st_size


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
    check_request(n_events, val_fraction, workers)
    write = partial(_write, kind=kind, scalars=scalars, simulate=simulate, seed=seed)
    manifest = {
        "format": FORMAT, "version": VERSION, "kind": kind, "shape": list(shape),
        "scalars": scalars, "seed": seed, "meta": meta or {},
    }  # fmt: skip
    return write_dataset(
        out, plan(n_events, val_fraction, per_file), write, manifest,
        workers=workers, force=force, progress=progress,
    )  # fmt: skip
