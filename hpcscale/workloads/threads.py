"""CPU threads of a rank, from the site's settings (seed 002: intra-op and inter-op threads per
worker, ``OMP_NUM_THREADS`` in the job's environment); and work started in the background while
the rank stages its data (``Background``, ``preimport_compiler``)."""

from __future__ import annotations

import importlib
import os
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
    construction (``torch._disable_dynamo``), 4–6 s of a rank's start-up on an H200's host, paid in
    ``build``; imported while the rank stages its data (h5py, Blosc, the device's work release
    the GIL), the build finds it loaded or waits for the rest only."""
    return Background(lambda: importlib.import_module("torch._dynamo"), "preimport-dynamo")
