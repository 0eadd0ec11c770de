"""Registered workloads, by the model names that select them (``--model``, a descriptor's
``training.model``).

Like torchtitan's ``ModelSpec`` registry: one ``WorkloadSpec`` per workload says which module
defines it (its ``WORKLOAD`` class, a ``hpcscale.train.workload.Workload``), the kind of data set
it trains on, the module that simulates that data set, its presets (the model names that select
it: ``jishnet`` and ``jishnet-small`` are presets of one workload; the workload reads the preset
from ``config.model`` and takes its sizes and default target from it) and the size of its
default data set. The specs are plain data, so listing and validating names imports neither
torch nor a workload module; ``get`` imports one module.

Adding a workload: write its module (or package) with a ``WORKLOAD`` class (and, for a new kind
of data, a module with ``generate(out, events, seed=, workers=, val_fraction=, force=,
progress=, resolution=)``), then add one line to ``SPECS`` below; nothing else changes. A test
or a plug-in can also call ``register(WorkloadSpec(...))`` before the rank parses its options.

Every lookup goes through ``spec(model)``: a later source of specs (entry points of the group
``hpcscale.workloads``, or ``--model package.module:Class``) plugs in there and in ``names()``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from hpcscale.errors import UserError
from hpcscale.workloads import plugins

if TYPE_CHECKING:
    from hpcscale.sites.models import Site
    from hpcscale.train.workload import Workload


@dataclass(frozen=True)
class WorkloadSpec:
    """One workload: ``name`` (its first preset), ``module`` (defines ``WORKLOAD``), ``data``
    (the kind of data set it trains on: "lartpc", "calo3d", "jets", …), ``generator`` (the
    module whose ``generate`` simulates that kind), ``presets`` (every model name that selects
    it, ``name`` first) and ``events`` (its default data set's size where the site's
    descriptor does not give one: a study of a small preset on this machine, about a minute
    per job)."""

    name: str
    module: str
    data: str
    generator: str
    presets: tuple[str, ...]
    events: int
    source: str = "bundled"  # or "<package> <version>", "module <package.module:Class>"

    def __post_init__(self) -> None:
        if not self.presets or self.presets[0] != self.name:
            raise ValueError(f"workload {self.name!r}: its presets start with its name")

    def load(self) -> type[Workload]:
        """The workload class (imports its module, and torch with it)."""
        module, _, attr = self.module.partition(":")  # a plug-in names its class
        return getattr(importlib.import_module(module), attr or "WORKLOAD")  # type: ignore[no-any-return]

    def generate(self) -> Callable[..., Any]:
        """The function that simulates this workload's data set."""
        if not self.generator:
            raise UserError(
                f"model {self.name!r} has no data generator (it stages its own data); give --data"
            )
        return importlib.import_module(self.generator).generate


LARTPC = "hpcscale.data.generate"  # single-particle LArTPC events (the paper's)
SPECS: list[WorkloadSpec] = [
    WorkloadSpec("jishnet", "hpcscale.workloads.jishnet", "lartpc", LARTPC,
                 ("jishnet", "jishnet-small"), 2000),
    WorkloadSpec("scnet", "hpcscale.workloads.scnet", "lartpc", LARTPC,
                 ("scnet", "scnet-small"), 2000),
    WorkloadSpec("3dgan", "hpcscale.workloads.gan3d", "calo3d",
                 "hpcscale.workloads.gan3d.showers", ("3dgan", "3dgan-small"), 4000),
    WorkloadSpec("cms-jets", "hpcscale.workloads.jets", "jets",
                 "hpcscale.workloads.jets.simulate", ("cms-jets", "cms-jets-small"), 4000),
]  # fmt: skip
DEFAULT = "jishnet"  # the paper's network

# model name (every preset) → its workload's spec, and the views derived from it (kept in step
# with SPECS by ``register``)
_BY_MODEL: dict[str, WorkloadSpec] = {}
_MODULES: dict[str, str] = {}
_EVENTS: dict[str, int] = {}
MODELS: Mapping[str, str] = MappingProxyType(_MODULES)  # model name → module, read-only
DEFAULT_EVENTS: Mapping[str, int] = MappingProxyType(_EVENTS)  # data kind → default events


def register(spec: WorkloadSpec) -> None:
    """Add a workload (a test's, a plug-in's): every one of its presets selects it."""
    taken = [m for m in spec.presets if m in _BY_MODEL and _BY_MODEL[m].name != spec.name]
    if taken:
        raise ValueError(f"model name {taken[0]!r} already selects {_BY_MODEL[taken[0]].name!r}")
    if spec not in SPECS:
        SPECS[:] = [s for s in SPECS if s.name != spec.name] + [spec]
    _BY_MODEL.update(dict.fromkeys(spec.presets, spec))
    _MODULES.update(dict.fromkeys(spec.presets, spec.module))
    _EVENTS.setdefault(spec.data, spec.events)


for _entry in list(SPECS):
    register(_entry)
del _entry


def names() -> list[str]:
    """Every model name, presets included, in registry order, then the names installed
    packages declare (entry points of ``hpcscale.workloads``; no workload is imported)."""
    return list(dict.fromkeys([*_BY_MODEL, *plugins.declared()]))


def check_name(model: str, flag: str = "--model") -> str:
    """``model`` if a workload serves it; else one line naming ``flag`` and the known names."""
    spec(model, flag)
    return model


def spec(model: str, flag: str = "--model") -> WorkloadSpec:
    """The spec of the workload that ``model`` (a name or a preset) selects: the one place a
    model name is resolved (entry points or ``package.module:Class`` would be looked up here)."""
    found = _BY_MODEL.get(model)
    if found is not None and not found.source.startswith("bundled"):
        return found  # a plug-in resolved before in this process
    if plugins.is_path(model):
        return _plugin_spec(plugins.by_path(model, flag), flag)
    plugin = plugins.find(model, bundled=found is not None)  # a clash is one line
    if plugin is not None:
        return _plugin_spec(plugin, flag)
    if found is None:
        raise UserError(
            f"{flag} {model!r} is unknown; choose one of {', '.join(names())}, or give a class "
            "as package.module:Class (`hpcscale workloads` lists every name)"
        )
    return found


def spec_if_bundled(model: str) -> bool:
    """``model`` is one of hpcscale's own names (or registered in this process)."""
    found = _BY_MODEL.get(model)
    return found is not None and found.source == "bundled"


def _plugin_spec(plugin: plugins.Plugin, flag: str) -> WorkloadSpec:
    """A plug-in's spec, from its class (imported now), remembered for this process."""
    cls = plugins.load_class(plugin, flag)
    found = WorkloadSpec(
        plugin.name, plugin.value, presets=(plugin.name,), source=plugin.source,
        **plugins.class_fields(cls),
    )  # fmt: skip
    _BY_MODEL[plugin.name] = found
    _MODULES[plugin.name] = found.module
    _EVENTS.setdefault(found.data, found.events)
    return found


def origin(model: str) -> dict[str, Any]:
    """Where ``model``'s workload comes from, for the summary's provenance: bundled (with
    hpcscale's version), a package and its version, or a module file and its sha256."""
    found = spec(model)
    if found.source == "bundled":
        from hpcscale import __version__

        return {"source": "bundled", "package": "hpcscale", "version": __version__}
    plugin = None if plugins.is_path(model) else plugins.find(model, bundled=False)
    return plugins.origin(plugin, found.module)


def data_kind(model: str) -> str:
    """The kind of data set ``model`` trains on: "lartpc", "calo3d", "jets", …"""
    return spec(model).data


def generator(model: str) -> Callable[..., Any]:
    """The ``generate`` function that simulates ``model``'s data set."""
    return spec(model).generate()


def get(model: str) -> type[Workload]:
    """The workload class that trains ``model``."""
    return spec(model).load()


def check_training(site: Site) -> None:
    """A descriptor's ``training.model`` against the registry (the site loader calls this; the
    descriptor's model imports no workloads)."""
    check_name(site.training.model, "training.model:")
