"""``hpcscale container``: a site's recipe (hpccm) and its image build."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from hpcscale.cli.options import SitesDir
from hpcscale.containers.build import BUILDERS, build
from hpcscale.containers.recipe import recipe
from hpcscale.errors import UserError
from hpcscale.sites import load_site
from hpcscale.sites.detect import resolve


def container_render(
    site: Annotated[str, typer.Option("--site", "-s", help="Site name.")],
    fmt: Annotated[str, typer.Option("--format", help="singularity or docker.")] = "singularity",
    sites_dir: SitesDir = None,
) -> None:
    """Print the site's container recipe (Apptainer/Singularity definition or Dockerfile)."""
    if fmt not in ("singularity", "docker"):
        raise UserError(f"--format {fmt!r}: choose singularity or docker")
    sys.stdout.write(recipe(resolve(load_site(site, sites_dir or [])), fmt))  # type: ignore[arg-type]


def container_build(
    site: Annotated[str, typer.Option("--site", "-s", help="Site name.")],
    out_path: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Image (a folder for ch-image); default: the descriptor's image."
        ),
    ] = None,
    builder: Annotated[
        str | None,
        typer.Option(
            help="ch-image, apptainer, singularity, docker or podman; default: the first "
            "installed for the site's runtime."
        ),
    ] = None,
    base: Annotated[
        str | None,
        typer.Option(
            help="Base for the recipe's FROM: a root file system tarball or a ch-image name "
            "(default: the recipe's, or a Debian base made with mmdebstrap when no registry "
            "is reachable)."
        ),
    ] = None,
    sites_dir: SitesDir = None,
) -> None:
    """Build the site's image from its recipe with the installed builder; record its digest."""
    if builder is not None and builder not in BUILDERS:
        raise UserError(f"--builder {builder!r}: choose one of {', '.join(BUILDERS)}")
    started = time.monotonic()

    def say(line: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {line}", file=sys.stderr, flush=True)

    record = build(resolve(load_site(site, sites_dir or [])), out_path, builder, base, say)
    size = record.get("size_bytes")
    shown = f", {size / 2**30:.2f} GiB" if size else ""
    print(f"built {record['image']} with {record['builder']}{shown}: {record['digest']}")
