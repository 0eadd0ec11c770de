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
    "3dgan": "hpcscale.workloads.gan3d",
    "3dgan-small": "hpcscale.workloads.gan3d",
    "cms-jets": "hpcscale.workloads.jets",
    "cms-jets-small": "hpcscale.workloads.jets",
}
# model name → the data set it trains on (models not listed: LArTPC events)
DATA: dict[str, str] = {
    "3dgan": "calo3d",
    "3dgan-small": "calo3d",
    "cms-jets": "jets",
    "cms-jets-small": "jets",
}
# the size of a kind's default data set where the site's descriptor does not give one (a study
# of a small preset on this machine: about a minute per job)
DEFAULT_EVENTS: dict[str, int] = {"lartpc": 2000, "calo3d": 4000, "jets": 4000}
# data set kind → the module whose ``generate(out, events, seed=, workers=, val_fraction=,
# force=, progress=, resolution=)`` simulates it (``hpcscale data generate --workload``)
GENERATORS: dict[str, str] = {
    "lartpc": "hpcscale.data.generate",
    "calo3d": "hpcscale.workloads.gan3d.showers",
    "jets": "hpcscale.workloads.jets.simulate",
}


def register(model: str, module: str, data: str | None = None) -> None:
    """Add a model name served by ``module`` (which defines ``WORKLOAD``), e.g. a workload of
    your own, before the rank parses its options; ``data``: the kind of data set it trains on
    (a key of ``GENERATORS``), when not LArTPC events."""
    MODELS[model] = module
    if data is not None:
        DATA[model] = data


def data_kind(model: str) -> str:
    """The kind of data set ``model`` trains on: "lartpc", "calo3d", "jets", …"""
    return DATA.get(check_name(model), "lartpc")


def generator(model: str):  # type: ignore[no-untyped-def]
    """The ``generate`` function that simulates ``model``'s data set."""
    return importlib.import_module(GENERATORS[data_kind(model)]).generate


def names() -> list[str]:
    return list(MODELS)


def check_name(model: str, flag: str = "--model") -> str:
    if model not in MODELS:
        raise UserError(f"{flag} {model!r} is unknown; choose one of {', '.join(MODELS)}")
    return model


def get(model: str) -> type[Workload]:
    """The workload class that trains ``model``."""
    module = importlib.import_module(MODELS[check_name(model)])
    return module.WORKLOAD
