"""SCNet's data path: events stay sparse (coordinates, charges) from the HDF5 shards to the device.

Staging (the paper's DLT, measured exactly as for JishNet) reads this rank's 1/N of the events
(every N-th) into three flat arrays plus per-event offsets: no dense R × R image is ever made and no
Blosc is needed ("no compression was needed", the paper says of SCNet). A minibatch is the
concatenation of its events' deposits with a batch-index column, assembled by a thread ahead of
the step and copied to the device from pinned memory (``--input host``, the default), or
(``--input device``) assembled on the device from the rank's events kept there
(``DeviceSparse``): no thread and no copy, but a few more ops in the step's Python, which bounds
SCNet's GPU step (measured slower on an H200: 11.9 vs 10.9 ms per step).
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hpcscale.data import files
from hpcscale.data.manifest import LARTPC, read_manifest
from hpcscale.data.scatter import device_rows
from hpcscale.data.store import shard_indices


@dataclass
class SparseBatch:
    coords: torch.Tensor  # (N, 3) int64 on the device: batch index, row (wire), column (tick)
    features: torch.Tensor  # (N, 1) float32: charge
    y: torch.Tensor
    size: int
    # assemble_s: time the thread spent concatenating the events; geometry_s: making their
    # geometry (``SparsePrefetcher``'s prepare); data_wait_s: time the loop waited for the
    # batch; h2d_s: issuing the (asynchronous) host-to-device copies
    timings: dict[str, float]
    geometry: Any = None  # the model's geometry of the sites, where made ahead


@dataclass
class SparseStore:
    """A rank's events, flat: event i's deposits are rows offsets[i]:offsets[i+1]."""

    resolution: int
    wire: np.ndarray  # int16
    tick: np.ndarray  # int16
    charge: np.ndarray  # float32
    offsets: np.ndarray  # int64, len(labels) + 1
    labels: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.wire, self.tick, self.charge, self.offsets))

    def assemble(self, idx: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """The deposits of events ``idx`` as (coords (N, 3) int64, charges (N, 1) float32)."""
        starts, ends = self.offsets[idx], self.offsets[np.asarray(idx) + 1]
        rows = np.concatenate([np.arange(a, b) for a, b in zip(starts, ends, strict=True)])
        coords = np.empty((rows.size, 3), dtype=np.int64)
        coords[:, 0] = np.repeat(np.arange(len(idx)), ends - starts)
        coords[:, 1] = self.wire[rows]
        coords[:, 2] = self.tick[rows]
        return coords, self.charge[rows, None]


def load_sparse(
    folder: Path, split: str, rank: int, world: int, limit: int | None = None
) -> tuple[SparseStore, int, float]:
    """Read this rank's 1/N of ``split``; returns the store, the split's event count (all
    ranks) and the seconds it took."""
    start = time.perf_counter()
    manifest = read_manifest(folder, LARTPC)
    n = manifest.count(split)
    if limit is not None:
        n = min(n, limit)
    parts: dict[str, list[np.ndarray]] = {"wire": [], "tick": [], "charge": []}
    labels = []
    for label, wire, tick, charge in files.iter_events(
        manifest, split, shard_indices(n, rank, world)
    ):
        labels.append(label)
        parts["wire"].append(wire)
        parts["tick"].append(tick)
        parts["charge"].append(charge)
    counts = np.array([c.size for c in parts["charge"]], dtype=np.int64)

    def flat(name: str, dtype: str) -> np.ndarray:
        return np.concatenate(parts[name]).astype(dtype) if labels else np.empty(0, dtype)

    store = SparseStore(
        resolution=manifest.resolution,
        wire=flat("wire", "int16"),
        tick=flat("tick", "int16"),
        charge=flat("charge", "float32"),
        offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        labels=np.asarray(labels, dtype=np.int64),
    )
    return store, n, time.perf_counter() - start


class SparsePrefetcher:
    """Assembles minibatches in a thread, ``depth`` ahead of the step.

    With ``prepare`` (``SCNet.geometry``), the thread also copies each minibatch to the device
    and makes its geometry there, on a stream of its own, so the step finds its kernel maps and
    poolings made: SCNet's step is bound by its ops' host overhead, and about half its forward's
    ops depend on the sites alone. The loop's stream waits for that stream's work (an event per
    minibatch) and the tensors are marked as used on it, so their memory is not reused early.
    With ``threads`` > 1 the minibatches are made by that many threads in turn (each with its
    own stream; PyTorch's ops let the GIL go while they run), and come out in order.
    """

    def __init__(
        self,
        store: SparseStore,
        device: torch.device,
        depth: int = 2,
        prepare: Callable[[torch.Tensor, int], Any] | None = None,
        threads: int = 1,
    ) -> None:
        self.store, self.device, self.depth = store, device, max(depth, 1)
        self.pin = device.type == "cuda"
        self.prepare = prepare
        self.threads = max(threads, 1)  # minibatch j is made by thread j % threads
        gpu = prepare is not None and device.type == "cuda"
        self.streams = [torch.cuda.Stream(device) if gpu else None for _ in range(self.threads)]

    def _fill(
        self,
        order: Sequence[np.ndarray],
        ready: queue.Queue,
        stop: threading.Event,
        stream: torch.cuda.Stream | None,
    ) -> None:
        try:
            if stream is not None:
                torch.cuda.set_device(self.device)
            for idx in order:
                if stop.is_set():
                    return
                t = time.perf_counter()
                coords, charge = self.store.assemble(idx)
                c, f = torch.from_numpy(coords), torch.from_numpy(charge)
                if self.pin:
                    c, f = c.pin_memory(), f.pin_memory()
                assemble_s = time.perf_counter() - t
                if self.prepare is None:
                    ready.put((idx, c, f, None, None, {"assemble_s": assemble_s}))
                    continue
                t = time.perf_counter()
                with torch.cuda.stream(stream) if stream else contextlib.nullcontext():
                    c = c.to(self.device, non_blocking=True)
                    f = f.to(self.device, non_blocking=True)
                    geometry = self.prepare(c, len(idx))
                    done = torch.cuda.Event() if stream else None
                    if done is not None:
                        done.record(stream)
                timings = {"assemble_s": assemble_s, "geometry_s": time.perf_counter() - t}
                ready.put((idx, c, f, geometry, done, timings))
        except BaseException as exc:  # surface errors in the loop, not a silent thread death
            ready.put(exc)

    def batches(self, order: Sequence[np.ndarray]) -> Iterator[SparseBatch]:
        order, n = list(order), self.threads
        queues: list[queue.Queue] = [queue.Queue(maxsize=self.depth) for _ in range(n)]
        stop = threading.Event()
        threads = [
            threading.Thread(
                target=self._fill, args=(order[i::n], queues[i], stop, self.streams[i]),
                daemon=True,
            )
            for i in range(n)
        ]  # fmt: skip
        for thread in threads:
            thread.start()
        labels = torch.as_tensor(self.store.labels)
        try:
            for j in range(len(order)):
                t = time.perf_counter()
                item = queues[j % n].get()
                if isinstance(item, BaseException):
                    raise item
                idx, coords, charge, geometry, done, timings = item
                timings["data_wait_s"] = time.perf_counter() - t
                t = time.perf_counter()
                if done is not None:  # made on the thread's stream: wait for it, mark its use
                    main = torch.cuda.current_stream(self.device)
                    main.wait_event(done)
                    for tensor in (coords, charge, *geometry.tensors()):
                        tensor.record_stream(main)
                coords = coords.to(self.device, non_blocking=True)
                charge = charge.to(self.device, non_blocking=True)
                y = labels[torch.as_tensor(idx)].to(self.device, non_blocking=True)
                timings["h2d_s"] = time.perf_counter() - t
                yield SparseBatch(coords, charge, y, len(idx), timings, geometry)
        finally:
            stop.set()
            for thread, ready in zip(threads, queues, strict=True):
                while thread.is_alive():  # unblock a thread waiting to put
                    try:
                        ready.get_nowait()
                    except queue.Empty:
                        thread.join(timeout=0.1)


class DeviceSparse:
    """Minibatches assembled on the device from the rank's events, held there: the same
    ``coords`` and ``features`` as ``SparseStore.assemble`` (events in minibatch order, each
    event's deposits in store order)."""

    def __init__(self, store: SparseStore, device: torch.device) -> None:
        self.store, self.device = store, device

        def put(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a)).to(device)

        self.wire, self.tick = put(store.wire), put(store.tick)
        self.charge = put(store.charge)
        self.starts, self.counts = put(store.offsets[:-1]), put(np.diff(store.offsets))
        self.labels = put(store.labels)

    def batches(self, order: Sequence[np.ndarray]) -> Iterator[SparseBatch]:
        offsets = self.store.offsets
        for idx in order:
            t = time.perf_counter()
            idx = np.asarray(idx, dtype=np.int64)
            total = int((offsets[idx + 1] - offsets[idx]).sum())
            i = torch.from_numpy(idx).to(self.device, non_blocking=True)
            rows, place = device_rows(self.starts, self.counts, i, total)
            coords = torch.stack([place, self.wire[rows].long(), self.tick[rows].long()], 1)
            features = self.charge[rows].unsqueeze(1)
            timings = {"data_wait_s": time.perf_counter() - t}
            yield SparseBatch(coords, features, self.labels[i], len(idx), timings)
