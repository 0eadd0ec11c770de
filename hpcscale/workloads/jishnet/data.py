"""JishNet's data paths: dense minibatches from the compressed store, prepared ahead of the
training step by a thread (``--input blosc``, the paper's), or made on the device from the
events' deposits (``--input sparse-device``, ``DeviceDense``).

The thread decompresses each minibatch straight into a pinned host buffer (``decompress_ptr``;
Blosc releases the GIL, as ``EventStore`` asks it to) and, on a GPU, copies it to a device buffer
on its own CUDA stream. The step only makes its stream wait for that copy's event: neither
decompression nor the host-to-device copy sits on the step's critical path unless the thread
falls behind (then the loop's wait shows up as ``data_wait_s``).

Buffers come in slots. A slot goes back to the thread when the loop asks for the next batch; on a
GPU the thread's stream also waits for the compute that read the slot, so a buffer is never
overwritten while a step may still use it.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from hpcscale.data.scatter import Densifier
from hpcscale.data.store import EventStore

SWITCH_INTERVAL_S = 0.0005  # Python's GIL switch interval while the prefetch thread runs


@dataclass
class DenseBatch:
    x: torch.Tensor  # (B, 1, R, R) on the device
    y: torch.Tensor
    size: int
    # decompress_s: time the thread spent decompressing this batch; data_wait_s: time the loop
    # waited for it (the part of data loading not hidden); h2d_s: issuing the host-to-device
    # copy, in the thread on its own stream (0 on CPU)
    timings: dict[str, float]


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
        self.cuda = device.type == "cuda"
        r = store.resolution
        shape = (batch, 1, r, r)
        n_slots = max(depth, 1) + 1
        self.host = [torch.empty(shape, pin_memory=self.cuda) for _ in range(n_slots)]
        self.dev = [torch.empty(shape, device=device) for _ in range(n_slots)] if self.cuda else []
        self.stream = torch.cuda.Stream(device) if self.cuda else None
        self.consumed: list[torch.cuda.Event | None] = [None] * n_slots
        self.copied: list[torch.cuda.Event | None] = [None] * n_slots  # out of the host buffer
        self.channels_last = channels_last

    def _fill(
        self,
        order: Sequence[np.ndarray],
        free: queue.Queue,
        ready: queue.Queue,
        stop: threading.Event,
    ) -> None:
        try:
            if self.cuda:
                torch.cuda.set_device(self.device)
            for idx in order:
                slot = free.get()
                if stop.is_set():
                    return
                if self.copied[slot] is not None:  # its last copy to the device has left
                    self.copied[slot].synchronize()  # type: ignore[union-attr]
                t = time.perf_counter()
                base, stride = self.host[slot].data_ptr(), self.store.image_nbytes
                for k, i in enumerate(idx):
                    self.store.decompress_into(int(i), base + k * stride)
                decompress_s = time.perf_counter() - t
                copied, h2d_s = None, 0.0
                if self.cuda:
                    t = time.perf_counter()
                    with torch.cuda.stream(self.stream):
                        if self.consumed[slot] is not None:
                            self.stream.wait_event(self.consumed[slot])
                        self.dev[slot][: len(idx)].copy_(
                            self.host[slot][: len(idx)], non_blocking=True
                        )
                        copied = torch.cuda.Event()
                        copied.record(self.stream)
                    # not waited for here: the next minibatch decompresses while this one
                    # copies (364 MB at 3600²: ~7 ms over PCIe on an H200's host, beside ~14 ms
                    # of decompression); the buffer is waited for before it is written again
                    self.copied[slot] = copied
                    h2d_s = time.perf_counter() - t
                ready.put((slot, idx, decompress_s, h2d_s, copied))
        except BaseException as exc:  # surface errors in the loop, not a silent thread death
            ready.put(exc)

    def batches(self, order: Sequence[np.ndarray]) -> Iterator[DenseBatch]:
        """Yield device batches for the index arrays in ``order`` (each ``batch`` long)."""
        free: queue.Queue = queue.Queue()
        ready: queue.Queue = queue.Queue()
        for slot in range(len(self.host)):
            free.put(slot)
        stop = threading.Event()
        thread = threading.Thread(target=self._fill, args=(order, free, ready, stop), daemon=True)
        # the thread gives the GIL back for each image it decompresses; with the step's Python
        # holding it, each return waited up to the 5 ms switch interval (7 per minibatch)
        switch = sys.getswitchinterval()
        sys.setswitchinterval(min(switch, SWITCH_INTERVAL_S))
        thread.start()
        labels = torch.as_tensor(self.store.labels)
        previous: int | None = None
        try:
            for _ in range(len(order)):
                if previous is not None:
                    self._release(previous, free)
                t = time.perf_counter()
                item = ready.get()
                if isinstance(item, BaseException):
                    raise item
                slot, idx, decompress_s, h2d_s, copied = item
                if self.cuda:
                    torch.cuda.current_stream(self.device).wait_event(copied)
                    x = self.dev[slot][: len(idx)]
                else:
                    x = self.host[slot][: len(idx)]
                wait_s = time.perf_counter() - t
                if self.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                y = labels[torch.as_tensor(idx)].to(self.device, non_blocking=True)
                timings = {"decompress_s": decompress_s, "data_wait_s": wait_s, "h2d_s": h2d_s}
                yield DenseBatch(x, y, len(idx), timings)
                previous = slot
        finally:
            stop.set()
            free.put(0)  # wake the thread if it waits for a slot
            thread.join(timeout=5)
            sys.setswitchinterval(switch)

    def _release(self, slot: int, free: queue.Queue) -> None:
        if self.cuda:  # the thread's next copy into this slot waits for the step that read it
            event = torch.cuda.Event()
            event.record(torch.cuda.current_stream(self.device))
            self.consumed[slot] = event
        free.put(slot)


class DeviceDense:
    """Dense minibatches scattered on the device from the events' deposits (``--input
    sparse-device``): no decompression, no 364 MB host-to-device copy per minibatch of 7 at
    3600 × 3600, no thread. The deposits live on the device (``Densifier``); one dense buffer is
    reused, cleared cell by cell: the step's stream orders its reads before the next fill."""

    def __init__(self, store: Any, batch: int, device: torch.device) -> None:
        r = store.resolution
        linear = store.wire.astype(np.int64) * r + store.tick.astype(np.int64)
        self.densifier = Densifier(store.offsets, linear, store.charge, r * r, device)
        self.labels = torch.as_tensor(store.labels).to(device)
        self.device, self.shape = device, (batch, 1, r, r)
        self.buffer: torch.Tensor | None = None  # allocated at the first minibatch
        self.previous: torch.Tensor | None = None

    def batches(
        self, order: Sequence[np.ndarray], channels_last: bool = False
    ) -> Iterator[DenseBatch]:
        for idx in order:
            t = time.perf_counter()
            if self.buffer is None:
                self.buffer = torch.zeros(self.shape, device=self.device)
            self.previous = self.densifier.fill(self.buffer, idx, self.previous)
            x = self.buffer[: len(idx)]
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = self.labels[torch.as_tensor(idx).to(self.device, non_blocking=True)]
            # the host's time to issue the scatter (the device runs it before the step)
            yield DenseBatch(x, y, len(idx), {"data_wait_s": time.perf_counter() - t})
