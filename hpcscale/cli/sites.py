"""``hpcscale sites``: list, show and validate site descriptors."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich import box
from rich.console import Console
from rich.table import Table

from hpcscale.cli.options import SitesDir
from hpcscale.errors import UserError
from hpcscale.messages import one_line
from hpcscale.sites import load_file, load_site, site_files
from hpcscale.sites.detect import resolve
from hpcscale.tables import gpu_text


def sites_list(ctx: typer.Context, sites_dir: SitesDir = None) -> None:
    """Table of every known site (bundled, --sites-dir, HPCSCALE_SITES_PATH)."""
    if ctx.invoked_subcommand is not None:  # `sites --sites-dir D show X`: D counts for X
        ctx.obj = {"sites_dir": list(sites_dir or [])}
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1))
    for col in ("site", "scheduler+launcher", "arch", "cores", "GPUs", "nodes", "walltime"):
        table.add_column(col, no_wrap=True)
    for name, path in site_files(sites_dir or []).items():
        site = load_file(path)
        node = site.node
        arch, cores, gpus = (
            ("auto", "auto", "auto")
            if node is None
            else (node.arch, str(node.cores), gpu_text(node.gpus, short=True))
        )
        table.add_row(
            name,
            f"{site.scheduler.kind}+{site.launcher.kind}",
            arch,
            cores,
            gpus,
            str(site.limits.max_nodes),
            site.limits.max_walltime,
        )
    Console().print(table)


def group_dirs(ctx: typer.Context, sites_dir: list[Path] | None) -> list[Path]:
    """A subcommand's --sites-dir folders, then those given before it (``sites --sites-dir``)."""
    given = ((ctx.parent.obj if ctx.parent else None) or {}).get("sites_dir", [])
    return [*(sites_dir or []), *given]


def sites_show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Site name.")],
    as_yaml: Annotated[
        bool, typer.Option("--yaml", help="Print the descriptor file only (to copy and edit).")
    ] = False,
    sites_dir: SitesDir = None,
) -> None:
    """Show one site's full descriptor (with this machine's hardware for detected sites)."""
    sites_dir = group_dirs(ctx, sites_dir)
    if as_yaml:
        load_site(name, sites_dir or [])  # an unknown name: one line listing the known ones
        sys.stdout.write(site_files(sites_dir or [])[name].read_text())
        return
    site = resolve(load_site(name, sites_dir or []))
    node = site.node
    if node is None:  # resolve() always fills it; keeps type checkers honest
        raise UserError(f"site {name!r}: no node description")
    print(f"{site.name}: {site.description}")
    print(
        f"  node: {node.sockets} × {node.cpu} ({node.arch}, {node.cores} cores, "
        f"{node.threads_per_core} threads/core, {node.memory_gb:g} GB); GPUs: "
        f"{gpu_text(node.gpus)}"
    )
    print(
        f"  {site.scheduler.kind.upper()} + {site.launcher.kind}, engine {site.engine}, "
        f"container {site.container.runtime}; limits: {site.limits.max_nodes} nodes, "
        f"{site.limits.max_walltime} walltime; descriptor sha256 {site.digest()[:12]}"
    )
    print()
    print(yaml.safe_dump(site.model_dump(mode="json", exclude_none=True), sort_keys=False), end="")


def sites_validate(
    files: Annotated[list[Path], typer.Argument(help="Descriptor files to check.")],
) -> None:
    """Validate descriptor files; one line per file, exit 2 if any is bad."""
    bad = 0
    for path in files:
        try:
            site = load_file(path)
        except UserError as exc:
            bad += 1
            print(f"error: {one_line(str(exc))}", file=sys.stderr)
        else:
            print(f"ok: {path} ({site.scheduler.kind} + {site.launcher.kind})")
    if bad:
        raise typer.Exit(2)


def sites_schema(
    as_markdown: Annotated[
        bool,
        typer.Option(
            "--markdown", help="The field reference as Markdown (docs/site-descriptor.md)."
        ),
    ] = False,
) -> None:
    """Print the site descriptor's JSON Schema: every field, its type, default and meaning."""
    from hpcscale.sites.reference import markdown, schema  # pydantic's schema: this command only

    sys.stdout.write(markdown() if as_markdown else schema())
