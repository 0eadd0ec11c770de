"""The on-disk event format: sparse events in HDF5 shards plus a JSON manifest.

A data set is a folder (its manifest: ``data/manifest.py``, kind "lartpc")::

    manifest.json          format, version, kind, resolution, classes, seed, splits, files
    train-00000.h5 ...     one HDF5 file per shard
    val-00000.h5 ...

Each HDF5 file holds, for its ``n`` events (bring your own events by writing the same layout)::

    /offsets  int64  [n + 1]   event i's deposits are [offsets[i], offsets[i+1])
    /wire     int16  [total]   image row (collection-plane wire)
    /tick     int16  [total]   image column (time tick)
    /charge   float32[total]   deposited charge (MIP units; any non-negative scale works)
    /label    int8   [n]       index into manifest["classes"]
    attrs: format="hpcscale-lartpc-sparse", version=1, resolution=R

Images are R × R, zero where no deposit is listed.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hpcscale.data.manifest import LARTPC_FORMAT as FORMAT
from hpcscale.data.manifest import VERSION, LArTPCManifest
from hpcscale.errors import DataError

DATASETS = {
    "offsets": "int64",
    "wire": "int16",
    "tick": "int16",
    "charge": "float32",
    "label": "int8",
}


def write_shard(path: Path, events: Sequence[Any], resolution: int) -> None:
    """Write ``events`` (with .label, .wire, .tick, .charge) as one HDF5 shard, atomically."""
    import h5py

    counts = np.array([e.charge.size for e in events], dtype=np.int64)
    # Built in memory and written with one plain write: a full disk is then an ordinary OSError
    # here, not HDF5's page of "Exception ignored" tracebacks from a file it cannot close.
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["version"] = VERSION
        f.attrs["resolution"] = resolution
        f["offsets"] = np.concatenate([[0], np.cumsum(counts)])
        for name in ("wire", "tick", "charge"):
            data = [getattr(e, name) for e in events]
            f.create_dataset(name, data=np.concatenate(data).astype(DATASETS[name]))
        f["label"] = np.array([e.label for e in events], dtype=np.int8)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_bytes(buffer.getbuffer())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(path)


def check_shards(manifest: LArTPCManifest) -> None:
    """Every shard's layout and labels, read before any rank starts (labels and offsets are
    small; the deposits themselves are checked as the ranks read them). Names the file and
    the event."""
    import h5py

    k = len(manifest.classes)
    for entry in manifest.files:
        path = manifest.folder / entry["name"]
        try:
            with h5py.File(path, "r") as f:
                _check_shard(path, f, int(entry["events"]), manifest.resolution)
                labels = f["label"][...]
                counts = np.diff(f["offsets"][...])
        except FileNotFoundError:
            raise DataError(f"{path}: no such file (listed in manifest.json)") from None
        except OSError as exc:
            raise DataError(f"{path}: unreadable HDF5 file, truncated or corrupt ({exc})") from None
        bad = np.flatnonzero((labels < 0) | (labels >= k))
        if bad.size:
            i = int(bad[0])
            raise DataError(
                f"{path}: event {i} has label {int(labels[i])}, but manifest.json lists {k} "
                f"classes (labels 0..{k - 1}: {', '.join(manifest.classes)}); "
                f"{bad.size} event(s) of this file are out of range"
            )
        if counts.size and counts.min() < 0:
            i = int(np.flatnonzero(counts < 0)[0])
            raise DataError(f"{path}: /offsets decrease at event {i}; they must not")
        _check_coordinates(path, manifest.resolution)


CHUNK = 1 << 22  # deposits read at once by the coordinate check (32 MB of int64)


def _check_coordinates(path: Path, r: int) -> None:
    """Every deposit's wire and tick inside the r × r image, read in chunks before any rank
    starts (a rank that meets one stops the whole job); names the file and the first event."""
    import h5py

    with h5py.File(path, "r") as f:
        offsets = f["offsets"][...]
        for name in ("wire", "tick"):
            data = f[name]
            for start in range(0, data.shape[0], CHUNK):
                part = data[start : start + CHUNK]
                bad = np.flatnonzero((part < 0) | (part >= r))
                if bad.size:
                    at = start + int(bad[0])
                    event = int(np.searchsorted(offsets, at, side="right")) - 1
                    raise DataError(
                        f"{path}: event {event} has a deposit outside the {r}×{r} image ({name} "
                        f"{int(part[bad[0]])}); fix the file, or regenerate the data set "
                        f"(`hpcscale data generate --out DIR --resolution {r}`)"
                    )


def iter_events(
    manifest: LArTPCManifest, split: str, select: Sequence[int] | None = None
) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """Yield (label, wire, tick, charge) for the events of ``split`` whose global index
    (position within the split, files in manifest order) is in ``select`` (all if None)."""
    import h5py

    wanted = None if select is None else np.asarray(sorted(select), dtype=np.int64)
    first = 0
    r = manifest.resolution
    for entry in manifest.split(split):
        path = manifest.folder / entry["name"]
        n = int(entry["events"])
        local = (
            np.arange(n)
            if wanted is None
            else wanted[(wanted >= first) & (wanted < first + n)] - first
        )
        first += n
        if local.size == 0:
            continue
        try:
            with h5py.File(path, "r") as f:
                _check_shard(path, f, n, r)
                events = list(_read_events(path, f, local, r))
        except FileNotFoundError:
            raise DataError(f"{path}: no such file (listed in manifest.json)") from None
        except OSError as exc:
            raise DataError(f"{path}: unreadable HDF5 file, truncated or corrupt ({exc})") from None
        yield from events


def _read_events(
    path: Path, f: Any, local: np.ndarray, r: int
) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """The selected events of one open shard. A rank of a large job wants 1/N of a file's
    events: it reads just their deposits; a rank that wants most of them reads the whole
    datasets at once (one read beats thousands of small ones)."""
    offsets = f["offsets"][...]
    labels = f["label"][...]
    sizes = {k: f[k].shape[0] for k in ("wire", "tick", "charge")}
    if offsets[-1] != sizes["charge"] or len(set(sizes.values())) != 1:
        raise DataError(
            f"{path}: offsets end at {offsets[-1]} but there are {sizes['charge']} charges, "
            f"{sizes['wire']} wires, {sizes['tick']} ticks"
        )
    whole = 4 * local.size >= labels.size
    data = {k: f[k][...] for k in ("wire", "tick", "charge")} if whole else f
    for i in local:
        a, b = offsets[i], offsets[i + 1]
        w, t, c = (data[k][a:b] for k in ("wire", "tick", "charge"))
        if w.size and (w.min() < 0 or t.min() < 0 or w.max() >= r or t.max() >= r):
            raise DataError(f"{path}: event {i} has a deposit outside the {r}×{r} image")
        yield int(labels[i]), w, t, c


def _check_shard(path: Path, f: Any, n: int, resolution: int) -> None:
    for name, dtype in DATASETS.items():
        if name not in f:
            raise DataError(f"{path}: dataset /{name} is missing")
        if f[name].ndim != 1 or f[name].dtype.kind != np.dtype(dtype).kind:
            raise DataError(
                f"{path}: /{name} has shape {f[name].shape} and dtype "
                f"{f[name].dtype}; expected 1-D {dtype}"
            )
    if f["offsets"].shape[0] != n + 1 or f["label"].shape[0] != n:
        raise DataError(
            f"{path}: manifest says {n} events but /offsets has "
            f"{f['offsets'].shape[0]} entries and /label {f['label'].shape[0]}"
        )
    if int(f.attrs.get("resolution", resolution)) != resolution:
        raise DataError(
            f"{path}: resolution {f.attrs['resolution']} differs from the manifest's {resolution}"
        )
