"""CPU threads of a rank, from the site's settings (seed 002: intra-op and inter-op threads per
worker, ``OMP_NUM_THREADS`` in the job's environment)."""

from __future__ import annotations

import os

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
