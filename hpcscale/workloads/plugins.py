"""Workloads from outside hpcscale: other packages' entry points and ``package.module:Class``.

A package declares its workloads in the entry-point group ``hpcscale.workloads`` (the mechanism
submitit's own plug-ins use): the entry point's name is the model name, its value the
``Workload`` class (``package.module:Class``). ``--model package.module:Class`` selects a class
from any module importable where the job runs, with no packaging. Both become a
``WorkloadSpec`` (``hpcscale.workloads``) the first time a name is resolved; listing names reads
the installed packages' metadata only and imports no workload.

A class may say what it trains on with class attributes: ``data_kind`` (default ``"own"``: it
stages its own data, or reads ``--data``), ``generator`` (a module with ``generate(out, events,
...)`` that simulates its data set; default none) and ``default_events``.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.metadata as md
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpcscale.errors import UserError

GROUP = "hpcscale.workloads"
OWN_DATA = "own"  # the data kind of a workload that stages its own data (or reads --data)
# ``package.module:Class``: dotted identifiers, one colon
PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Plugin:
    """One workload name from outside: where it comes from, before anything is imported."""

    name: str
    value: str  # package.module:Class
    package: str | None  # the distribution that declares it (None: --model module:Class)
    version: str | None

    @property
    def source(self) -> str:
        return f"{self.package} {self.version}" if self.package else f"module {self.value}"


def is_path(model: str) -> bool:
    """``model`` names a class by its module (``package.module:Class``)."""
    return ":" in model


@functools.cache
def declared() -> dict[str, list[Plugin]]:
    """Every name the installed packages declare in the group, each with every declaration
    (more than one is a clash). Reads metadata only, once per process (``declared.cache_clear()``
    after installing a package into a running Python)."""
    out: dict[str, list[Plugin]] = {}
    seen: set[tuple[str, str, str | None]] = set()
    for dist in md.distributions():
        for ep in dist.entry_points:
            if ep.group != GROUP:
                continue
            package = dist.metadata["Name"]
            key = (ep.name, ep.value, package)
            if key in seen:  # the same distribution found twice on sys.path
                continue
            seen.add(key)
            out.setdefault(ep.name, []).append(Plugin(ep.name, ep.value, package, dist.version))
    return out


def clash_text(name: str, plugins: list[Plugin], bundled: bool) -> str:
    """One line saying who declares ``name`` more than once."""
    who = [p.source for p in plugins]
    if bundled:
        who.insert(0, "hpcscale (bundled)")
    return (
        f"model name {name!r} is declared by {len(who)} sources ({'; '.join(who)}); uninstall "
        "one, or select the class by its module: --model package.module:Class"
    )


def find(name: str, bundled: bool) -> Plugin | None:
    """The entry point ``name`` (None: no installed package declares it); a clash (declared
    twice, or also a bundled name) is a ``UserError``."""
    plugins = declared().get(name, [])
    if not plugins:
        return None
    if len(plugins) > 1 or bundled:
        raise UserError(clash_text(name, plugins, bundled))
    return plugins[0]


def by_path(model: str, flag: str) -> Plugin:
    """``package.module:Class`` as a plug-in; the package that owns the module, if any."""
    if not PATH.match(model):
        raise UserError(
            f"{flag} {model!r}: a class by its module is written package.module:Class "
            "(dotted Python names, one colon)"
        )
    return Plugin(model, model, None, None)


def load_class(plugin: Plugin, flag: str) -> type:
    """Import the class a plug-in names; a module that is not there, or a class that is not a
    Workload, is one line."""
    module_name, _, attr = plugin.value.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        where = f"package {plugin.package}'s entry point " if plugin.package else ""
        raise UserError(
            f"{flag} {plugin.name!r}: {where}module {module_name} cannot be imported "
            f"({type(exc).__name__}: {exc}); is it installed in this Python ({sys.executable})?"
        ) from None
    cls = getattr(module, attr, None)
    # the Workload interface by its parts (the registry sits below the training core)
    needed = ("Config", "stage", "build", "step", "evaluate", "parameters")
    if not (isinstance(cls, type) and all(hasattr(cls, n) for n in needed)):
        raise UserError(
            f"{flag} {plugin.name!r}: {plugin.value} is not a hpcscale.train.workload.Workload "
            "subclass"
        )
    return cls


def class_fields(cls: type) -> dict[str, Any]:
    """What a spec needs from a plug-in class: its data kind, generator and default size."""
    return {
        "data": str(getattr(cls, "data_kind", OWN_DATA)),
        "generator": str(getattr(cls, "generator", "") or ""),
        "events": int(getattr(cls, "default_events", 1000)),
    }


def origin(plugin: Plugin | None, module_value: str) -> dict[str, Any]:
    """The provenance of a workload: the package and version that declare it, else the file
    of the module that defines it and its sha256 (a module outside any package)."""
    if plugin is not None and plugin.package:
        return {"source": "package", "package": plugin.package, "version": plugin.version,
                "class": plugin.value}  # fmt: skip
    module_name = module_value.partition(":")[0]
    module = sys.modules.get(module_name) or importlib.import_module(module_name)
    file = getattr(module, "__file__", None)
    out: dict[str, Any] = {"source": "module", "class": module_value, "file": file}
    if file and Path(file).is_file():
        out["sha256"] = hashlib.sha256(Path(file).read_bytes()).hexdigest()
    return out
