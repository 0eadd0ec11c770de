"""The in-memory event store: every image of a rank's shard, Blosc-compressed, as in the paper.

Loading builds each dense R × R image in one reusable scratch buffer (only the deposits are written
and then cleared again, so no 52 MB memset per event), compresses it with ``blosc.compress_ptr``,
and keeps the bytes. At training time ``decompress_into`` writes an image straight to an address
(a pinned host buffer) with ``blosc.decompress_ptr``: no intermediate copy.

The loading phase is the data-loading time (DLT) of the paper; ``load_shard`` times it. With
``threads`` > 1 it compresses that many events at once (a thread pool, each thread its own
scratch image; Blosc releases the GIL), while the main thread reads the next ones.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from hpcscale.data import files
from hpcscale.data.manifest import LARTPC, read_manifest

Shuffle = Literal["none", "byte", "bit"]


@dataclass(frozen=True)
class Codec:
    """Blosc settings. The default was picked by ``bench/blosc_codecs.py`` (see its docstring)."""

    cname: Literal["blosclz", "lz4", "lz4hc", "zstd", "zlib"] = "blosclz"
    clevel: int = 9
    shuffle: Shuffle = "none"
    threads: int = 0  # 0: blosc's default (all cores)

    def blosc_shuffle(self) -> int:
        import blosc

        return {"none": blosc.NOSHUFFLE, "byte": blosc.SHUFFLE, "bit": blosc.BITSHUFFLE}[
            self.shuffle
        ]


@dataclass
class EventStore:
    resolution: int
    codec: Codec = field(default_factory=Codec)
    dtype: np.dtype = field(default_factory=lambda: np.dtype(np.float32))
    blobs: list[bytes] = field(default_factory=list)
    labels_list: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        import blosc

        if self.codec.threads:
            blosc.set_nthreads(self.codec.threads)
        # python-blosc holds the GIL while it (de)compresses unless told otherwise: the prefetch
        # thread's decompression then stalls the training step's Python for as long.
        blosc.set_releasegil(True)
        self._blosc = blosc
        self._scratch = np.zeros((self.resolution, self.resolution), dtype=self.dtype)
        self._shuffle = self.codec.blosc_shuffle()

    @property
    def image_nbytes(self) -> int:
        return self.resolution * self.resolution * self.dtype.itemsize

    def add(self, label: int, wire: np.ndarray, tick: np.ndarray, charge: np.ndarray) -> None:
        self.append(label, self.compress(self._scratch, wire, tick, charge))

    def compress(
        self, scratch: np.ndarray, wire: np.ndarray, tick: np.ndarray, charge: np.ndarray
    ) -> bytes:
        """One event's dense image, built in ``scratch`` (all zeros, and left so), compressed."""
        scratch[wire, tick] = charge
        try:
            return self._blosc.compress_ptr(
                scratch.ctypes.data,
                scratch.size,
                typesize=self.dtype.itemsize,
                clevel=self.codec.clevel,
                shuffle=self._shuffle,
                cname=self.codec.cname,
            )
        finally:
            scratch[wire, tick] = 0

    def append(self, label: int, blob: bytes) -> None:
        self.blobs.append(blob)
        self.labels_list.append(label)

    def __len__(self) -> int:
        return len(self.blobs)

    @property
    def labels(self) -> np.ndarray:
        return np.asarray(self.labels_list, dtype=np.int64)

    @property
    def compressed_nbytes(self) -> int:
        return sum(len(b) for b in self.blobs)

    def decompress_into(self, index: int, address: int) -> None:
        """Write image ``index`` to memory at ``address`` (image_nbytes long)."""
        self._blosc.decompress_ptr(self.blobs[index], address)

    def image(self, index: int) -> np.ndarray:
        out = np.empty((self.resolution, self.resolution), dtype=self.dtype)
        self.decompress_into(index, out.ctypes.data)
        return out


@dataclass(frozen=True)
class LoadStats:
    events: int  # this rank's
    total_events: int  # all ranks'
    seconds: float
    raw_bytes: int
    compressed_bytes: int

    @property
    def ratio(self) -> float:
        return self.raw_bytes / max(self.compressed_bytes, 1)


def shard_indices(n: int, rank: int, world: int) -> np.ndarray:
    """The paper's sharding: rank r of N takes every N-th event, n/N of them."""
    return np.arange(rank, n, world)


def load_shard(
    folder: Path,
    split: str,
    rank: int,
    world: int,
    codec: Codec | None = None,
    limit: int | None = None,
    progress: Callable[[int], None] | None = None,
    threads: int = 1,
) -> tuple[EventStore, LoadStats]:
    """Read this rank's 1/N of ``split`` from ``folder`` into a compressed store, compressing
    ``threads`` events at once (0: one per core, at most 8)."""
    manifest = read_manifest(folder, LARTPC)
    start = time.perf_counter()
    n = manifest.count(split)
    if limit is not None:
        n = min(n, limit)
    select = shard_indices(n, rank, world)
    store = EventStore(manifest.resolution, codec or Codec())
    events = files.iter_events(manifest, split, select)
    threads = threads or min(os.cpu_count() or 1, 8)
    if threads <= 1:
        for label, wire, tick, charge in events:
            store.add(label, wire, tick, charge)
            if progress and len(store) % 64 == 0:
                progress(len(store))
    else:
        _compress_in_pool(store, events, threads, progress)
    stats = LoadStats(
        len(store),
        n,
        time.perf_counter() - start,
        len(store) * store.image_nbytes,
        store.compressed_nbytes,
    )
    return store, stats


def _compress_in_pool(
    store: EventStore,
    events: Any,
    threads: int,
    progress: Callable[[int], None] | None,
) -> None:
    """``store.add`` for every event, ``threads`` compressions at a time, in order."""
    local = threading.local()

    def compress(wire: np.ndarray, tick: np.ndarray, charge: np.ndarray) -> bytes:
        if not hasattr(local, "scratch"):
            local.scratch = np.zeros((store.resolution,) * 2, dtype=store.dtype)
        return store.compress(local.scratch, wire, tick, charge)

    pending: deque = deque()
    with ThreadPoolExecutor(threads, thread_name_prefix="blosc-stage") as pool:
        for label, wire, tick, charge in events:
            pending.append((label, pool.submit(compress, wire, tick, charge)))
            while len(pending) > 2 * threads or (pending and pending[0][1].done()):
                label_done, future = pending.popleft()
                store.append(label_done, future.result())
                if progress and len(store) % 64 == 0:
                    progress(len(store))
        for label_done, future in pending:
            store.append(label_done, future.result())
