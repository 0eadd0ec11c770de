"""Registered workloads, by the model names that select them (``--model``, a descriptor's
``workload.model``).

Like torchtitan's model registry: a name maps to the module that defines the workload (its
``WORKLOAD`` class, a ``hpcscale.train.workload.Workload``). The table is plain data, so listing
and validating names imports neither torch nor the workloads; ``get`` imports one module.
A new workload is a new module (or package) and its names here; nothing else changes.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from hpcscale.errors import UserError

if TYPE_CHECKING:
    from hpcscale.train.workload import Workload

DEFAULT = "jishnet"  # the paper's network
# model name → module defining WORKLOAD. A workload's presets are its names' variants.
MODELS: dict[str, str] = {
    "jishnet": "hpcscale.workloads.jishnet",
    "jishnet-small": "hpcscale.workloads.jishnet",
    "scnet": "hpcscale.workloads.scnet",
    "scnet-small": "hpcscale.workloads.scnet",
}


def register(model: str, module: str) -> None:
    """Add a model name served by ``module`` (which defines ``WORKLOAD``), e.g. a workload of
    your own, before the rank parses its options."""
    MODELS[model] = module


def names() -> list[str]:
    return list(MODELS)


def check_name(model: str) -> str:
    if model not in MODELS:
        raise UserError(f"--model {model!r} is unknown; choose one of {', '.join(MODELS)}")
    return model


def get(model: str) -> type[Workload]:
    """The workload class that trains ``model``."""
    module = importlib.import_module(MODELS[check_name(model)])
    return module.WORKLOAD
