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
from hpcscale.keptsite import study_site_name, with_kept
from hpcscale.sites import Site, load_site
from hpcscale.sites.detect import resolve

SiteOrStudy = Annotated[
    str | None, typer.Option("--site", "-s", help="Site name (or --study STUDY: its site).")
]
FromStudy = Annotated[
    Path | None,
    typer.Option("--study", metavar="STUDY", help="The site a study ran on (its kept descriptor)."),
]


def site_of(site: str | None, study: Path | None, sites_dir: list[Path] | None) -> Site:
    """The site named by --site, or the one a study folder keeps (no --sites-dir needed)."""
    if study is not None:
        return resolve(load_site(site or study_site_name(study), with_kept(sites_dir, study)))
    if site is None:
        raise UserError("give --site NAME (or --study STUDY for the site a study ran on)")
    return resolve(load_site(site, sites_dir or []))


def container_render(
    site: SiteOrStudy = None,
    fmt: Annotated[str, typer.Option("--format", help="singularity or docker.")] = "singularity",
    sites_dir: SitesDir = None,
    study: FromStudy = None,
) -> None:
    """Print the site's container recipe (Apptainer/Singularity definition or Dockerfile)."""
    if fmt not in ("singularity", "docker"):
        raise UserError(f"--format {fmt!r}: choose singularity or docker")
    sys.stdout.write(recipe(site_of(site, study, sites_dir), fmt))  # type: ignore[arg-type]


def container_build(
    site: SiteOrStudy = None,
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
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="A data set folder to copy into the image (at /opt/hpcscale-data), "
            "for studies with --data-placement image.",
        ),
    ] = None,
    sites_dir: SitesDir = None,
    study: FromStudy = None,
) -> None:
    """Build the site's image from its recipe with the installed builder; record its digest."""
    if builder is not None and builder not in BUILDERS:
        raise UserError(f"--builder {builder!r}: choose one of {', '.join(BUILDERS)}")
    started = time.monotonic()

    def say(line: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {line}", file=sys.stderr, flush=True)

    record = build(site_of(site, study, sites_dir), out_path, builder, base, say, data)
    size = record.get("size_bytes")
    shown = f", {size / 2**30:.2f} GiB" if size else ""
    print(f"built {record['image']} with {record['builder']}{shown}: {record['digest']}")
    if record.get("data"):
        held = record["data"]
        print(f"with the data set {held['source']} at {held['path']} (--data-placement image)")
