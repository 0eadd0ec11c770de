"""``hpcscale data generate``: simulate a data set in parallel and write it atomically.

Event ``i`` depends only on (seed, i), so the result is the same for any number of workers. Shards
are written into a temporary sibling folder that is renamed into place at the end, so an
interrupted run leaves no half data set behind.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hpcscale.data import files
from hpcscale.data.pool import worker_pool
from hpcscale.data.simulate import CLASSES, event, labels_for
from hpcscale.errors import DataError
from hpcscale.fsutil import atomic_write


@dataclass(frozen=True)
class Shard:
    name: str
    split: str
    first: int  # global event index of the shard's first event
    labels: tuple[int, ...]


def plan_shards(n_events: int, val_fraction: float, per_file: int, seed: int) -> list[Shard]:
    labels = labels_for(n_events, seed)
    n_val = round(n_events * val_fraction) if n_events > 1 else 0
    n_train = n_events - n_val
    shards = []
    for split, lo, hi in (("train", 0, n_train), ("val", n_train, n_events)):
        for k, start in enumerate(range(lo, hi, per_file)):
            stop = min(start + per_file, hi)
            shards.append(
                Shard(
                    f"{split}-{k:05d}.h5", split, start, tuple(int(x) for x in labels[start:stop])
                )
            )
    return shards


def _write(shard: Shard, folder: str, seed: int, resolution: int) -> tuple[Shard, int]:
    events = [event(shard.first + i, lab, seed, resolution) for i, lab in enumerate(shard.labels)]
    path = Path(folder) / shard.name
    files.write_shard(path, events, resolution)
    return shard, path.stat().st_size


def generate(
    out: Path,
    n_events: int,
    resolution: int = 3600,
    seed: int = 0,
    workers: int | None = None,
    val_fraction: float = 0.1,
    per_file: int = 256,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Write a data set to ``out``; returns the manifest. ``progress(n)`` is told each shard."""
    if n_events < 1:
        raise DataError(f"--events must be at least 1 (got {n_events})")
    if resolution < 16:
        raise DataError(f"--resolution must be at least 16 (got {resolution})")
    if workers is not None and workers < 1:
        raise DataError(f"--workers must be at least 1 (got {workers})")
    if not 0 <= val_fraction < 1:
        raise DataError(f"--val-fraction must be in [0, 1) (got {val_fraction})")
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not force:
        raise DataError(f"{out}: folder exists and is not empty; use --force to replace it")
    workers = workers or os.cpu_count() or 1
    shards = plan_shards(n_events, val_fraction, per_file, seed)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    tmp.mkdir(parents=True)
    start = time.perf_counter()
    sizes: dict[str, int] = {}
    try:
        with worker_pool(workers) as pool:
            futures = [pool.submit(_write, s, str(tmp), seed, resolution) for s in shards]
            for fut in as_completed(futures):
                shard, size = fut.result()
                sizes[shard.name] = size
                if progress:
                    progress(len(shard.labels))
        elapsed = time.perf_counter() - start
        manifest = {
            "format": files.FORMAT,
            "version": files.VERSION,
            "resolution": resolution,
            "classes": list(CLASSES),
            "seed": seed,
            "events": n_events,
            "splits": {
                s: sum(len(x.labels) for x in shards if x.split == s) for s in ("train", "val")
            },
            "label_counts": np.bincount(labels_for(n_events, seed), minlength=5).tolist(),
            "files": [
                {"name": s.name, "split": s.split, "events": len(s.labels), "bytes": sizes[s.name]}
                for s in shards
            ],
            "generator": {
                "workers": workers,
                "seconds": round(elapsed, 3),
                "events_per_s": round(n_events / elapsed, 2),
                "events_per_s_per_core": round(n_events / elapsed / workers, 2),
            },
        }
        atomic_write(tmp / "manifest.json", json.dumps(manifest, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        tmp.replace(out)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if exc.errno is None:
            raise
        # h5py's message is a page of HDF5 internals: the errno says what went wrong
        raise OSError(exc.errno, os.strerror(exc.errno), str(out)) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest
