"""Writing a data set, for every kind: the shards planned over the splits, written in parallel
into a temporary sibling folder with the manifest last, then renamed into place, so an
interrupted run leaves no half data set behind.

Sample ``i`` depends only on (seed, i), so a data set is the same for any number of workers.
``data/generate.py`` (LArTPC events) and ``data/tensors.py`` (sparse tensors) say how one shard
is written; this module does the rest.
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
from typing import Any

from hpcscale.data.pool import worker_pool
from hpcscale.errors import DataError
from hpcscale.fsutil import atomic_write


@dataclass(frozen=True)
class ShardPlan:
    name: str  # its file in the data set's folder
    split: str  # "train" or "val"
    first: int  # the global index of its first sample
    count: int  # its samples


# write(shard, folder) → the shard's file size in bytes; must be picklable (a module-level
# function or a partial of one): it runs in the worker processes
ShardWriter = Callable[[ShardPlan, str], int]


def check_request(n_events: int, val_fraction: float, workers: int | None) -> None:
    if n_events < 1:
        raise DataError(f"--events must be at least 1 (got {n_events})")
    if workers is not None and workers < 1:
        raise DataError(f"--workers must be at least 1 (got {workers})")
    if not 0 <= val_fraction < 1:
        raise DataError(f"--val-fraction must be in [0, 1) (got {val_fraction})")


def plan(n_events: int, val_fraction: float, per_file: int) -> list[ShardPlan]:
    """The shards of a data set: the last ``val_fraction`` of the samples are validation."""
    n_val = round(n_events * val_fraction) if n_events > 1 else 0
    shards = []
    for split, lo, hi in (("train", 0, n_events - n_val), ("val", n_events - n_val, n_events)):
        for k, start in enumerate(range(lo, hi, per_file)):
            shards.append(ShardPlan(f"{split}-{k:05d}.h5", split, start, min(per_file, hi - start)))
    return shards


def write_dataset(
    out: Path,
    shards: list[ShardPlan],
    write: ShardWriter,
    manifest: dict[str, Any],
    *,
    workers: int | None = None,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Write ``shards`` with ``write`` into ``out``, then ``manifest.json``: ``manifest`` with
    the splits, the files and the generator's timings added. Returns the whole manifest."""
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not force:
        raise DataError(f"{out}: folder exists and is not empty; use --force to replace it")
    workers = workers or os.cpu_count() or 1
    n_events = sum(s.count for s in shards)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    tmp.mkdir(parents=True)
    start = time.perf_counter()
    sizes: dict[str, int] = {}
    try:
        with worker_pool(workers) as pool:
            futures = {pool.submit(write, s, str(tmp)): s for s in shards}
            for fut in as_completed(futures):
                sizes[futures[fut].name] = fut.result()
                if progress:
                    progress(futures[fut].count)
        elapsed = time.perf_counter() - start
        manifest = {
            **manifest,
            "events": n_events,
            "splits": {s: sum(x.count for x in shards if x.split == s) for s in ("train", "val")},
            "files": [
                {"name": s.name, "split": s.split, "events": s.count, "bytes": sizes[s.name]}
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
