"""``hpcscale data generate``: simulate a data set in parallel and write it atomically.

Event ``i`` depends only on (seed, i), so the result is the same for any number of workers; the
shards are planned, written in parallel and renamed into place by ``data/shards.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache, partial
from pathlib import Path

import numpy as np

from hpcscale.data import files
from hpcscale.data.manifest import LARTPC
from hpcscale.data.shards import ShardPlan, check_request, plan, write_dataset
from hpcscale.data.simulate import CLASSES, event, labels_for
from hpcscale.errors import DataError


@lru_cache(maxsize=2)  # a worker writes many shards of one data set
def _labels(n_events: int, seed: int) -> np.ndarray:
    return labels_for(n_events, seed)


def _write(shard: ShardPlan, folder: str, n_events: int, seed: int, resolution: int) -> int:
    labels = _labels(n_events, seed)[shard.first : shard.first + shard.count]
    events = [event(shard.first + i, int(lab), seed, resolution) for i, lab in enumerate(labels)]
    path = Path(folder) / shard.name
    files.write_shard(path, events, resolution)
    return path.stat().st_size


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
    check_request(n_events, val_fraction, workers)
    if resolution < 16:
        raise DataError(f"--resolution must be at least 16 (got {resolution})")
    write = partial(_write, n_events=n_events, seed=seed, resolution=resolution)
    manifest = {
        "format": files.FORMAT, "version": files.VERSION, "kind": LARTPC,
        "resolution": resolution, "classes": list(CLASSES), "seed": seed,
        "label_counts": np.bincount(labels_for(n_events, seed), minlength=5).tolist(),
    }  # fmt: skip
    return write_dataset(
        out, plan(n_events, val_fraction, per_file), write, manifest,
        workers=workers, force=force, progress=progress,
    )  # fmt: skip
