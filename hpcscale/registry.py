"""The one registry idiom: a plain table of name → module, loaded when first asked for.

Every axis that a user picks by name (scheduler, launcher, container runtime, engine, study
kind) is a ``Registry``: a dict of ``name: "package.module"`` (in the style of ReFrame's
``core/backends.py``). Each module defines the registry's attribute (``BACKEND``, ``LAUNCHER``,
``RUNTIME``, ``ENGINE``, ``KIND``): the one object that owns that entry's template, refusals and
what it combines with. Listing and checking names imports no entry module; ``get`` imports the
one it returns.

Adding an entry: write its module (defining the attribute) and add one line to its table.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import import_module
from typing import Any, Generic, TypeVar

from hpcscale.errors import UnknownNameError
from hpcscale.messages import did_you_mean, shown

T = TypeVar("T")


@dataclass(frozen=True)
class Registry(Generic[T]):
    """Names of one axis, each to the module that defines its entry as ``attr``."""

    axis: str  # how messages name the axis: "launcher", "container runtime", ...
    table: Mapping[str, str]  # name -> "package.module"
    attr: str  # the module attribute holding the entry
    field: str | None = None  # the descriptor field naming it ("launcher.kind"), if any

    def names(self) -> tuple[str, ...]:
        """Every registered name, in table order (imports nothing)."""
        return tuple(self.table)

    def __contains__(self, name: object) -> bool:
        return name in self.table

    def __iter__(self) -> Iterator[str]:
        return iter(self.table)

    def check(self, name: str) -> str:
        """``name`` if registered, else an ``UnknownNameError`` naming the axis, the value and
        the allowed names (imports nothing)."""
        if name in self.table:
            return name
        where = f"{self.field} " if self.field else ""
        raise UnknownNameError(
            f"{where}{shown(name)}: no {self.axis} of that name; allowed: "
            f"{', '.join(self.table)}{did_you_mean(str(name), self.table)}"
        )

    def get(self, name: str) -> T:
        """The entry registered as ``name`` (its module is imported now, once)."""
        module = import_module(self.table[self.check(name)])
        entry: Any = getattr(module, self.attr)
        return entry
