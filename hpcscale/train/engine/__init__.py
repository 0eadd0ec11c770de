"""Data-parallel engines, one module per backend, registered by name (``registry.ENGINES``).
This file imports neither torch nor Horovod: the engine's module is loaded when it is made."""

from __future__ import annotations

from hpcscale.train.engine.registry import ENGINES, make_engine

__all__ = ["ENGINES", "make_engine"]
