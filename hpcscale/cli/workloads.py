"""``hpcscale workloads``: every model name a study can select, with where it comes from
(bundled with hpcscale, an installed package and its version) and the data it trains on."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from hpcscale import workloads
from hpcscale.errors import UserError
from hpcscale.workloads import plugins


def workloads_list() -> None:
    """List every model name: bundled ones, and those installed packages declare (entry-point
    group hpcscale.workloads). `--model package.module:Class` selects any other class."""
    table = Table(box=None, pad_edge=False)
    for col in ("model", "source", "data"):
        table.add_column(col)
    bundled = {s.name: s for s in workloads.SPECS if s.source == "bundled"}
    for spec in bundled.values():
        for preset in spec.presets:
            table.add_row(preset, "bundled", spec.data)
    clashes = []
    for name, found in plugins.declared().items():
        is_bundled = name in workloads.MODELS and workloads.spec_if_bundled(name)
        if len(found) > 1 or is_bundled:
            clashes.append(plugins.clash_text(name, found, bool(is_bundled)))
            continue
        try:
            data = workloads.spec(name).data
        except UserError as exc:  # declared, but its module does not import
            data = f"(cannot load: {exc})"
        table.add_row(name, found[0].source, data)
    Console(soft_wrap=True).print(table)
    print("any other class: --model package.module:Class")
    if clashes:
        raise UserError(clashes[0])
