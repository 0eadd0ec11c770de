"""CPU threads of a rank, from the site's settings (seed 002: intra-op and inter-op threads per
worker, ``OMP_NUM_THREADS`` in the job's environment); and work started in the background while
the rank stages its data (``Background``, ``preimport_compiler``)."""

from __future__ import annotations

import importlib
import os
import sys
import threading
import time
from collections.abc import Callable

import torch


def set_threads(intra: int = 0, inter: int = 0) -> dict[str, int | str | None]:
    """Set torch's intra-op threads (0: leave them to ``OMP_NUM_THREADS``, which torch reads) and
    inter-op threads (0: torch's default); returns what the rank runs with, for the summary.
    Inter-op threads can only be set before torch's first parallel work: if that has already
    happened, the summary says so instead of failing the rank."""
    note = None
    if intra:
        torch.set_num_threads(intra)
    if inter:
        try:
            torch.set_num_interop_threads(inter)
        except RuntimeError as exc:
            note = f"inter-op threads not set: {exc}"
    return {
        "intra_op": torch.get_num_threads(),
        "inter_op": torch.get_num_interop_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "KMP_BLOCKTIME": os.environ.get("KMP_BLOCKTIME"),
        "note": note,
    }


class Background:
    """A function run in a daemon thread while the rank does something else (staging); ``wait``
    joins it and returns what it raised, if anything (as text, for the summary)."""

    def __init__(self, fn: Callable[[], object], name: str) -> None:
        self.error: str | None = None
        self.seconds: float | None = None

        def target() -> None:
            t = time.perf_counter()
            try:
                fn()
            except Exception as exc:  # reported in the summary; the real step shows real faults
                self.error = f"{type(exc).__name__}: {exc}"
            self.seconds = time.perf_counter() - t

        self.thread = threading.Thread(target=target, name=name, daemon=True)
        self.thread.start()

    def wait(self) -> str | None:
        self.thread.join()
        return self.error


def preimport_compiler() -> Background:
    """Import ``torch._dynamo`` in the background: ``torch.optim``'s optimizers import it at
    construction and ``step`` imports it unconditionally (torch 2.11:
    ``_use_grad_for_differentiable``), 5–7 s of a rank's start-up on an H200's host, paid in
    ``build``; imported while the rank stages its data (h5py, Blosc, the device's work release
    the GIL), the build finds it loaded or waits for the rest only."""
    return Background(_import_dynamo, "preimport-dynamo")


# While a thread holds the GIL, one that released it (Blosc, h5py, a device copy) waits up to
# Python's switch interval (5 ms) to get it back: with a pure-Python import beside it, staging
# 1,000 JishNet events took 8.0 s instead of 1.5 s on an H200's host. A shorter interval while
# the import runs bounds that wait.
IMPORT_SWITCH_INTERVAL_S = 0.0005


def _import_dynamo() -> None:
    before = sys.getswitchinterval()
    sys.setswitchinterval(min(before, IMPORT_SWITCH_INTERVAL_S))
    try:
        importlib.import_module("torch._dynamo")
    finally:
        sys.setswitchinterval(before)
