"""JishNet's staging (the paper's DLT) in events/s per rank: the Blosc store built with a pool of
compressing threads (``load_shard(threads=)``) and Blosc's own threads, against the sparse store
that ``--input sparse-device`` keeps (no compression). One rank, every event of the split.

Usage: python bench/staging.py --data /tmp/hpcscale-bench-workloads/events-3600px-1000
       [--grid 1x0 --grid 4x1 --grid 8x2 ...]   (pool threads x Blosc threads; 0: Blosc's default)
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--grid", action="append", default=None)
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args()
    import blosc

    from hpcscale.data.store import Codec, load_shard
    from hpcscale.workloads.scnet.data import load_sparse

    cores = os.cpu_count() or 1
    print(f"{cores} cores, blosc {blosc.__version__} (default threads {blosc.nthreads})")
    t = time.perf_counter()
    sparse, _, _ = load_sparse(args.data, "train", 0, 1, limit=args.limit)
    s = time.perf_counter() - t
    print(f"  sparse store (sparse-device): {len(sparse)} events in {s:.2f} s = "
          f"{len(sparse) / s:.0f} events/s")  # fmt: skip
    reference = None
    for spec in args.grid or ["1x0", "4x1", "8x1", "8x2", "16x1"]:
        pool, bt = (int(v) for v in spec.split("x"))
        store, stats = load_shard(
            args.data, "train", 0, 1, Codec(threads=bt), limit=args.limit, threads=pool
        )
        if reference is None:
            reference, same = store, ""
        else:  # Blosc's bytes may depend on its threads; the images may not
            ok = all(np.array_equal(store.image(i), reference.image(i)) for i in range(len(store)))
            same = " same images" if ok else " IMAGES DIFFER"
        print(
            f"  blosc, {pool:2d} pool threads x {bt or 'default'} blosc threads: "
            f"{stats.events} events in {stats.seconds:.2f} s = "
            f"{stats.events / stats.seconds:.0f} events/s (ratio {stats.ratio:.0f}){same}"
        )


if __name__ == "__main__":
    main()
