"""Minibatches from the compressed store: decompressed straight into pinned host buffers by a
background thread (Blosc releases the GIL), then copied to the device with ``non_blocking``.

A slot (one minibatch buffer) goes back to the thread only when the loop asks for the next batch,
so a buffer is never overwritten while the step that reads it may still run.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from hpcscale.data.store import EventStore


@dataclass
class Batch:
    x: torch.Tensor  # on the device
    y: torch.Tensor
    decompress_s: float  # time the thread spent decompressing this batch
    wait_s: float  # time the loop waited for it
    h2d_s: float  # host-to-device copy (synchronised on CUDA)


class Prefetcher:
    def __init__(
        self,
        store: EventStore,
        batch: int,
        device: torch.device,
        depth: int = 2,
        channels_last: bool = False,
    ) -> None:
        self.store, self.batch, self.device = store, batch, device
        self.depth = max(depth, 1)
        pin = device.type == "cuda"
        r = store.resolution
        self.slots = [
            torch.empty((batch, 1, r, r), dtype=torch.float32, pin_memory=pin)
            for _ in range(self.depth + 1)
        ]
        self.channels_last = channels_last

    def _fill(
        self,
        order: Sequence[np.ndarray],
        free: queue.Queue,
        ready: queue.Queue,
        stop: threading.Event,
    ) -> None:
        try:
            for idx in order:
                slot = free.get()
                if stop.is_set():
                    return
                t = time.perf_counter()
                buf = self.slots[slot]
                base, stride = buf.data_ptr(), self.store.image_nbytes
                for k, i in enumerate(idx):
                    self.store.decompress_into(int(i), base + k * stride)
                ready.put((slot, idx, time.perf_counter() - t))
        except BaseException as exc:  # surface errors in the loop, not a silent thread death
            ready.put(exc)

    def batches(self, order: Sequence[np.ndarray]) -> Iterator[Batch]:
        """Yield device batches for the index arrays in ``order`` (each ``batch`` long)."""
        free: queue.Queue = queue.Queue()
        ready: queue.Queue = queue.Queue()
        for slot in range(len(self.slots)):
            free.put(slot)
        stop = threading.Event()
        thread = threading.Thread(target=self._fill, args=(order, free, ready, stop), daemon=True)
        thread.start()
        labels = torch.as_tensor(self.store.labels)
        previous: int | None = None
        try:
            for _ in range(len(order)):
                if previous is not None:
                    free.put(previous)
                t = time.perf_counter()
                item = ready.get()
                if isinstance(item, BaseException):
                    raise item
                slot, idx, decompress_s = item
                wait_s = time.perf_counter() - t
                t = time.perf_counter()
                x = self.slots[slot][: len(idx)].to(self.device, non_blocking=True)
                if self.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                y = labels[torch.as_tensor(idx)].to(self.device, non_blocking=True)
                if self.device.type == "cuda":
                    torch.cuda.current_stream(self.device).synchronize()
                yield Batch(x, y, decompress_s, wait_s, time.perf_counter() - t)
                previous = slot
        finally:
            stop.set()
            free.put(0)  # wake the thread if it waits for a slot
            thread.join(timeout=5)


def epoch_order(
    n: int, batch: int, steps: int, seed: int, epoch: int, rank: int
) -> list[np.ndarray]:
    """This rank's shuffled minibatches for one epoch: ``steps`` arrays of ``batch`` indices."""
    perm = np.random.default_rng([seed, epoch, rank]).permutation(n)
    return [perm[s * batch : (s + 1) * batch] for s in range(steps)]
