"""``hpcscale run``: one job on this machine, without a study, through the study pipeline."""

from __future__ import annotations

import datetime
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from hpcscale.cli.command import print_command_summary
from hpcscale.cli.options import Model, SitesDir
from hpcscale.cli.session import session, writable
from hpcscale.containers import imagedata
from hpcscale.errors import UserError
from hpcscale.fmt import plural
from hpcscale.launch import job_path, prepare_data, resolve
from hpcscale.preflight import check_engine
from hpcscale.run import run_local
from hpcscale.spec import with_flags
from hpcscale.tables import print_summary


def run(
    ctx: typer.Context,
    ranks: Annotated[int, typer.Option(help="Number of local ranks.", min=1)] = 2,
    data: Annotated[
        Path | None, typer.Option(help="Data set folder; default: the site's, generated once.")
    ] = None,
    model: Model = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", "-o", help="Job folder; default runs/<time>-<N>r.")
    ] = None,
    walltime: Annotated[str | None, typer.Option(help="HH:MM[:SS] time limit.")] = None,
    site: Annotated[
        str, typer.Option("--site", "-s", help="A site with scheduler local.")
    ] = "local",
    engine: Annotated[
        str | None,
        typer.Option(
            help="torch, horovod (its ranks started by horovodrun) or master-worker; "
            "default: the site's."
        ),
    ] = None,
    sites_dir: SitesDir = None,
) -> None:
    """Train on this machine with N ranks. Options of the training core and the model follow
    as typed (`hpcscale run --ranks 2 --model scnet-small --epochs 2`); `python -m
    hpcscale.train --model NAME --help` lists them."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    folder = out_dir or Path("runs") / f"{stamp}-{ranks}r"
    spec = with_flags(None, {
        "site": site, "ranks": [ranks], "walltime": walltime, "model": model,
        "data": job_path(str(data)) if data is not None else None, "options": list(ctx.args),
        "command": session(ctx).command, "requests": {"engine": engine},
    }, "the command line")  # fmt: skip
    launch = resolve(spec, folder, sites_dir, "the command line")
    if launch.site.scheduler.kind != "local":
        raise UserError(
            f"site {site} uses {launch.site.scheduler.kind}; `hpcscale run` runs only "
            "sites with scheduler local (use `hpcscale submit` for the others)"
        )
    writable(ctx, folder, "--out")
    check_engine(launch.site)
    imagedata.check_site(launch.site, launch.placements)  # no image here: refused in one line
    data_path = Path(prepare_data(launch, dry_run=False))
    what = f"training on {plural(ranks, 'rank')} (output in {folder / 'job.log'})"
    with Console(stderr=True).status(what):
        rc, summary = run_local(launch.site, launch.jobs[0], data_path, folder)
    if launch.spec.command:
        print_command_summary(summary, folder)
    else:
        print_summary(summary, folder)
    if summary["status"] == "completed":
        print(f"report with: hpcscale report {folder}")
    if rc != 0 or summary["status"] != "completed":
        print(f"the ranks' own output: {folder / 'job.log'}", file=sys.stderr)
        raise typer.Exit(1)
