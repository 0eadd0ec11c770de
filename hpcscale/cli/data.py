"""``hpcscale data generate``: a workload's simulated data set."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from hpcscale import workloads
from hpcscale.cli.session import writable


def data_generate(
    ctx: typer.Context,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder to create.")],
    events: Annotated[int, typer.Option(help="Number of events (train + val).")] = 2000,
    resolution: Annotated[int, typer.Option(help="Image side; the paper's is 3600.")] = 3600,
    seed: Annotated[int, typer.Option(help="Data set seed.")] = 0,
    workers: Annotated[
        int | None, typer.Option(help="Processes; default: all cores.", min=1)
    ] = None,
    val_fraction: Annotated[float, typer.Option(help="Share of events for validation.")] = 0.1,
    force: Annotated[bool, typer.Option(help="Replace an existing folder.")] = False,
    workload: Annotated[
        str,
        typer.Option(
            help="The model whose data set to simulate: jishnet (LArTPC events), 3dgan "
            "(calorimeter showers), cms-jets (jet images), ..."
        ),
    ] = "jishnet",
) -> None:
    """Simulate a workload's data set into HDF5 shards: single-particle LArTPC events (γ, e±,
    μ+, π+, K+), 25³ calorimeter showers (3dgan) or 8 × 125 × 125 jet images (cms-jets)."""
    generate = workloads.generator(workloads.check_name(workload, "--workload"))
    kind = workloads.data_kind(workload)
    writable(ctx, out_dir, "--out")
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        what = f"{resolution}×{resolution} events" if kind == "lartpc" else f"{kind} samples"
        task = bar.add_task(f"simulating {what}", total=events)
        manifest = generate(
            out_dir,
            events,
            resolution=resolution,
            seed=seed,
            workers=workers,
            val_fraction=val_fraction,
            force=force,
            progress=lambda n: bar.advance(task, n),
        )
    gen = manifest["generator"]
    print(
        f"wrote {out_dir}: {manifest['splits']['train']} train + {manifest['splits']['val']} val "
        f"events, {len(manifest['files'])} files, {gen['seconds']:.1f} s "
        f"({gen['events_per_s']:.1f} events/s, {gen['events_per_s_per_core']:.1f} per core)"
    )
