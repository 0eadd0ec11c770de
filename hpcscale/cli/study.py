"""The commands that turn flags into a study spec and hand it to ``launch``: ``submit``,
``optimize`` and ``render`` (which prints one job's script of the same study)."""

from __future__ import annotations

import difflib
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from hpcscale.cli.options import (
    Data,
    Gpus,
    Kfold,
    Like,
    Model,
    Nodes,
    Ranks,
    Repeats,
    Site,
    SitesDir,
    StudyDir,
    Sweep,
    TargetLoss,
    Walltime,
    size_flags,
    spec_arg,
    study_folder,
    study_options,
)  # fmt: skip
from hpcscale.cli.session import session, writable
from hpcscale.containers import imagedata
from hpcscale.errors import UserError
from hpcscale.fmt import params_text
from hpcscale.fsutil import atomic_write
from hpcscale.keptsite import with_kept
from hpcscale.launch import job_path, resolve, stage, study_folder_id
from hpcscale.launch import submit as submit_launch
from hpcscale.spec import SPEC_NAME, StudySpec, load_space, parse_sweep, with_flags
from hpcscale.study import create_study
from hpcscale.submission import study_job

SIZE_FLAGS = ("--gpus", "--nodes", "--ranks")


def study_spec(
    ctx: typer.Context, like: Path | None, flags: dict[str, Any], *, requests: dict[str, Any]
) -> tuple[StudySpec, str]:
    """The spec a command runs: its file or ``--like`` study, changed by the flags given."""
    base, where, options = spec_arg(list(ctx.args), like)
    if base is None and flags.get("site") is None:
        given = [o for o in options if o.split("=", 1)[0] in ("--spec", "--file", "-f")]
        if given:  # the natural guess; the spec file is the first argument
            raise UserError(
                f"unknown option {given[0].split('=', 1)[0]!r}: give a study spec file as the "
                f"first argument, `hpcscale {ctx.info_name} FILE.yaml` (or give --site)"
            )
        raise UserError("give --site (or a study spec file, or --like STUDY)")
    sized = size_flags(**{k: flags.pop(k, None) for k in ("gpus", "nodes", "ranks")})
    if base is None and not sized:
        for option in (o.split("=", 1)[0] for o in options if o.startswith("--")):
            near = difflib.get_close_matches(option, SIZE_FLAGS, n=1, cutoff=0.7)
            if near and option not in SIZE_FLAGS:
                raise UserError(
                    f"unknown option {option!r} (did you mean {near[0]}?); give exactly one of "
                    "--gpus, --nodes or --ranks (comma-separated sizes)"
                )
        raise UserError("give exactly one of --gpus, --nodes or --ranks (comma-separated sizes)")
    data = flags.pop("data", None)
    flags["command"] = session(ctx).command  # after `--`: a training command (cli/command.py)
    flags.update(sized, options=options, requests=requests,
                 data=job_path(str(data)) if data is not None else None)  # fmt: skip
    return with_flags(base, flags, where), where


@study_options
def submit(
    ctx: typer.Context,
    site: Site = None,
    gpus: Gpus = None,
    nodes: Nodes = None,
    ranks: Ranks = None,
    walltime: Walltime = None,
    data: Data = None,
    model: Model = None,
    target_loss: TargetLoss = None,
    sweep: Sweep = None,
    kfold: Kfold = None,
    repeats: Repeats = None,
    like: Like = None,
    study_dir: StudyDir = None,
    dry_run: Annotated[bool, typer.Option(help="Write the scripts, submit nothing.")] = False,
    resubmit: Annotated[bool, typer.Option(help="Submit jobs of the study again.")] = False,
    wait: Annotated[
        bool | None, typer.Option(help="Wait for each job (default: on local sites).")
    ] = None,
    sites_dir: SitesDir = None,
    requests: dict[str, Any] | None = None,
) -> None:
    """Run a study: one job per size (and per swept value, per fold). `hpcscale submit SPEC`
    runs a study spec file; the flags write the same spec (STUDY/study.yaml keeps it).
    Training options follow as typed (`--epochs 2`)."""
    flags = dict(site=site, gpus=gpus, nodes=nodes, ranks=ranks, walltime=walltime, data=data,
                 model=model, target_loss=target_loss, kfold=kfold, repeats=repeats,
                 sweep=parse_sweep(sweep) if sweep else None)  # fmt: skip
    spec, where = study_spec(ctx, like, flags, requests=requests or {})
    if spec.optimize is not None:
        raise UserError(f"{where}: has an optimize block; run it with `hpcscale optimize`")
    folder = study_folder(study_dir, spec.site)
    sites_dir = with_kept(sites_dir, like, _spec_file(ctx))
    launch = resolve(spec, folder, sites_dir, "--sweep" if sweep else where)
    writable(ctx, folder, "--study")
    data_path = stage(launch, dry_run, "hpcscale submit", resubmit)
    try:
        submit_launch(launch, data_path, dry_run=dry_run, resubmit=resubmit, wait=wait)
    except KeyboardInterrupt:
        session(ctx).notes.append(
            f"{folder}/manifest.json lists the jobs submitted so far; they keep running "
            f"(`hpcscale cancel {folder}` stops them)"
        )
        raise


@study_options
def render(
    ctx: typer.Context,
    site: Site = None,
    gpus: Gpus = None,
    nodes: Nodes = None,
    ranks: Ranks = None,
    walltime: Walltime = None,
    data: Annotated[str | None, typer.Option(help="Data set folder; default: the site's.")] = None,
    model: Model = None,
    target_loss: TargetLoss = None,
    sweep: Sweep = None,
    kfold: Kfold = None,
    repeats: Repeats = None,
    like: Like = None,
    job: Annotated[
        str | None,
        typer.Option(metavar="LABEL", help="Which job of the study (default: its first)."),
    ] = None,
    out_file: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write the script here, not to stdout.")
    ] = None,
    study_dir: Annotated[
        Path, typer.Option("--study", help="Study folder the job would belong to.")
    ] = Path("study"),
    sites_dir: SitesDir = None,
    requests: dict[str, Any] | None = None,
) -> None:
    """Print the job script that `submit` would submit for one job of a study (the same
    options as `submit`; `--job LABEL` picks the job, e.g. 2r-batch64)."""
    flags = dict(site=site, gpus=gpus, nodes=nodes, ranks=ranks, walltime=walltime,
                 data=data, model=model, target_loss=target_loss, kfold=kfold, repeats=repeats,
                 sweep=parse_sweep(sweep) if sweep else None)  # fmt: skip
    spec, where = study_spec(ctx, like, flags, requests=requests or {})
    folder = study_dir.absolute()
    sites_dir = with_kept(sites_dir, like, _spec_file(ctx))
    launch = resolve(spec, folder, sites_dir, "--sweep" if sweep else where)
    imagedata.check_site(launch.site, launch.placements)  # as submit --dry-run refuses it
    labels = [j.label for j in launch.jobs]
    chosen = next((j for j in launch.jobs if j.label == (job or labels[0])), None)
    if chosen is None:
        raise UserError(f"--job {job!r}: the study's jobs are {', '.join(labels)}")
    data_path = job_path(spec.data) or launch.site.data_dir
    if spec.command:  # as launch.prepare_data gives a command's jobs
        data_path = job_path(spec.data) or str(folder)
    _, _, text = study_job(
        launch.bound(data_path), chosen.plan, folder, study_folder_id(folder),
        chosen.point.data or data_path, chosen.model, chosen.args, chosen.label, chosen.command,
    )  # fmt: skip
    if out_file is None:
        sys.stdout.write(text)
        return
    writable(ctx, out_file.parent, "--out")
    atomic_write(out_file, text, mode=0o755)
    print(f"wrote {out_file}", file=sys.stderr)


Method = Annotated[
    str | None,
    typer.Option(metavar="[gp|evolution]",
                 help="Search method: gp (Bayesian, Gaussian process; default) or evolution."),
]  # fmt: skip
Direction = Annotated[
    str | None,
    typer.Option(metavar="[maximize|minimize]",
                 help="maximize (default) or minimize."),
]  # fmt: skip


@study_options
def optimize(
    ctx: typer.Context,
    site: Site = None,
    gpus: Annotated[str | None, typer.Option(help="GPUs of every trial.")] = None,
    nodes: Annotated[str | None, typer.Option(help="Nodes of every trial.")] = None,
    ranks: Annotated[str | None, typer.Option(help="Ranks of every trial.")] = None,
    space: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Search space (YAML): option: {low, high, log} or {choices: [...]}.",
        ),
    ] = None,
    method: Method = None,
    objective: Annotated[
        str | None, typer.Option(help="Figure of merit in the summaries (default val_accuracy).")
    ] = None,
    direction: Direction = None,
    trials: Annotated[int | None, typer.Option(help="Trials in all (default 12).", min=1)] = None,
    parallel: Annotated[
        int | None, typer.Option(help="Trials running at once (default 2).", min=1)
    ] = None,
    population: Annotated[
        int | None, typer.Option(help="Evolution: trials per generation.", min=2)
    ] = None,
    seed: Annotated[int | None, typer.Option(help="The search's seed.")] = None,
    walltime: Annotated[str | None, typer.Option(help="HH:MM[:SS] per trial.")] = None,
    data: Data = None,
    model: Model = None,
    target_loss: TargetLoss = None,
    like: Annotated[
        Path | None, typer.Option(metavar="STUDY", help="Repeat that study's search.")
    ] = None,
    study_dir: StudyDir = None,
    sites_dir: SitesDir = None,
    requests: dict[str, Any] | None = None,
) -> None:
    """Search training options: each trial is a job of the study; one line per finished trial.
    Run it again (or `hpcscale optimize --study STUDY`) to resume a stopped search."""
    opt = {"space": _space(space), "method": method, "objective": objective,
           "direction": direction, "trials": trials, "parallel": parallel,
           "population": population, "seed": seed}  # fmt: skip
    flags = dict(site=site, gpus=gpus, nodes=nodes, ranks=ranks, walltime=walltime, data=data,
                 model=model, target_loss=target_loss, optimize=opt)  # fmt: skip
    has_file = bool(ctx.args) and not ctx.args[0].startswith("-")
    if like is None and site is None and not has_file:
        if study_dir is None or not (study_dir / SPEC_NAME).exists():
            raise UserError("give --site and --space (or a spec file, or --study STUDY to resume)")
        like = study_dir  # resume from the study folder alone
    spec, where = study_spec(ctx, like, flags, requests=requests or {})
    if spec.optimize is None:
        raise UserError(f"{where}: no search space; give --space FILE (or an optimize block)")
    folder = study_folder(study_dir, spec.site)
    sites_dir = with_kept(sites_dir, like, _spec_file(ctx))
    launch = resolve(spec, folder, sites_dir, str(space) if space else where)
    writable(ctx, folder, "--study")
    data_path = stage(launch, False, "hpcscale optimize")
    _search(ctx, launch, folder, data_path)


def _spec_file(ctx: typer.Context) -> Path | None:
    """The spec file a command was given as its first argument, if any."""
    return Path(ctx.args[0]) if ctx.args and not ctx.args[0].startswith("-") else None


def _space(space: Path | None) -> dict[str, Any] | None:
    if space is None:
        return None
    return {k: v.model_dump(exclude_defaults=True) for k, v in load_space(space).items()}


def _search(ctx: typer.Context, launch: Any, folder: Path, data_path: str) -> None:
    """Run the search to its budget, one line per trial, then the best trial."""
    # numpy (and Optuna for a GP search): only a search needs them, not `hpcscale --help`
    from hpcscale.optimize import driver

    out = Console()
    request = {"sizes": [launch.shape.plan.label], "data": data_path, "model": launch.model,
               "extra": launch.args}  # fmt: skip
    create_study(folder, launch.site, request, "optimize")
    opt = launch.spec.optimize
    out.print(f"study {folder} on {launch.site.name}: {opt.method} search of "
              f"{', '.join(opt.space)} for the {opt.direction[:3]}imum of {opt.objective}, "
              f"{opt.trials} trials, {opt.parallel} at a time", soft_wrap=True)  # fmt: skip
    try:
        done = driver.run(launch.spec, launch.site, folder, data_path, launch.shape,
                          lambda line: out.print(line, soft_wrap=True))  # fmt: skip
    except KeyboardInterrupt:
        session(ctx).notes.append(
            "the trials submitted keep running; run the same command again to resume the "
            f"search (`hpcscale cancel {folder}` stops them)"
        )
        raise
    top = driver.best(done, opt.direction == "maximize")
    if top is None:
        out.print(f"no trial gave a figure ({opt.objective}); see hpcscale collect {folder}")
        raise typer.Exit(1)
    out.print(f"best: trial {top.label} {params_text(top.params)}: {opt.objective} "
              f"{top.value:.4g} ({folder / top.folder})", soft_wrap=True)  # fmt: skip
    out.print(f"report with: hpcscale report {folder}")
