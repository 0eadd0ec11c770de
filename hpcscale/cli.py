"""The ``hpcscale`` command line: parse → build → run, nothing else.

Errors are told in one place, ``main``: a ``UserError`` anywhere below becomes one line on
stderr and exit code 2 (see ``main`` for the rest); ``--verbose`` adds the traceback. Heavy
modules (torch, matplotlib, hpccm) are imported inside the commands that need them.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from hpcscale import __version__
from hpcscale.containers.runtime import with_binds
from hpcscale.errors import UserError
from hpcscale.messages import cut, escaped, one_line
from hpcscale.tables import gpu_text, plural, print_collect, print_summary

app = typer.Typer(
    name="hpcscale",
    help="How does my training scale on this machine? Site descriptors, job scripts, "
    "submission, timing and scaling reports.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,  # plain help: flags read `--dry-run / --no-dry-run`, not `<bool>`
)
sites_app = typer.Typer(
    help="List, show and validate site descriptors.",
    invoke_without_command=True,
    rich_markup_mode=None,
)
app.add_typer(sites_app, name="sites")
data_app = typer.Typer(help="Simulated LArTPC events: generate data sets.", rich_markup_mode=None)
app.add_typer(data_app, name="data")
container_app = typer.Typer(
    help="Container recipes per site (hpccm) and image builds.", rich_markup_mode=None
)
app.add_typer(container_app, name="container")

out = Console()
_state: dict[str, Any] = {"verbose": False, "writing": [], "notes": [], "interrupted": None}

WithContainer = Annotated[
    bool | None,
    typer.Option(
        "--container/--no-container",
        help="Wrap every rank in the site's container (default: the descriptor's).",
    ),
]
Image = Annotated[
    str | None,
    typer.Option(
        "--image",
        help="Run the ranks in this image (implies --container; default: the descriptor's "
        "container.image), e.g. one `hpcscale container build --out` made.",
    ),
]
SitesDir = Annotated[
    list[Path] | None,
    typer.Option(
        "--sites-dir",
        metavar="DIR",
        help="Extra folder of site descriptors, searched before the bundled ones (repeatable; "
        "also HPCSCALE_SITES_PATH).",
    ),
]


CpusPerTask = Annotated[
    int | None,
    typer.Option(
        help="CPUs per rank (default: the descriptor's, else the node's cores shared).", min=1
    ),
]
ThreadsPerCore = Annotated[
    int | None,
    typer.Option(help="Hardware threads used per core (1: no SMT; Slurm, LSF+jsrun).", min=1),
]
Memory = Annotated[
    float | None, typer.Option("--mem", metavar="GB", help="Memory per node to ask for, in GB.")
]
Reservation = Annotated[str | None, typer.Option(help="Run inside this reservation.")]
Nodelist = Annotated[str | None, typer.Option(help="Hosts the jobs must use, comma-separated.")]
Exclude = Annotated[str | None, typer.Option(help="Hosts the jobs must avoid, comma-separated.")]
Constraint = Annotated[
    str | None, typer.Option(help="Node features: a, a&b (all of), a|b (any of).")
]
Qos = Annotated[str | None, typer.Option(help="Quality of service (Slurm, Torque/Moab).")]
Requeues = Annotated[
    int | None,
    typer.Option(
        help="Times a job that reaches its walltime is requeued from its checkpoint "
        "(default: the descriptor's limits.requeues, 3).",
        min=0,
        max=100,
    ),
]


def _writable(folder: Path, what: str) -> None:
    """Refuse an unwritable output folder now; remember it, so that a full disk later on can be
    told as "writing --out X: No space left on device" even when the OS names no file."""
    from hpcscale.preflight import check_writable

    check_writable(folder, what)
    _state["writing"].append(f"{what} {folder}")


def _version(value: bool) -> None:
    if value:
        print(f"hpcscale {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print version.")
    ] = False,
) -> None:
    _state["verbose"] = verbose


@sites_app.callback()
def sites_list(ctx: typer.Context, sites_dir: SitesDir = None) -> None:
    """Table of every known site (bundled, --sites-dir, HPCSCALE_SITES_PATH)."""
    if ctx.invoked_subcommand is not None:
        return
    from hpcscale.sites import load_file, site_files

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
    out.print(table)


@sites_app.command("show")
def sites_show(
    name: Annotated[str, typer.Argument(help="Site name.")],
    as_yaml: Annotated[
        bool, typer.Option("--yaml", help="Print the descriptor file only (to copy and edit).")
    ] = False,
    sites_dir: SitesDir = None,
) -> None:
    """Show one site's full descriptor (with this machine's hardware for detected sites)."""
    import yaml

    from hpcscale.sites import load_site, site_files
    from hpcscale.sites.detect import resolve

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


@sites_app.command("validate")
def sites_validate(
    files: Annotated[list[Path], typer.Argument(help="Descriptor files to check.")],
) -> None:
    """Validate descriptor files; one line per file, exit 2 if any is bad."""
    from hpcscale.sites import load_file

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


@app.command()
def render(
    site: Annotated[str, typer.Option("--site", "-s", help="Site name.")],
    gpus: Annotated[int | None, typer.Option(help="Number of GPUs (GPU sites).")] = None,
    nodes: Annotated[int | None, typer.Option(help="Number of nodes.")] = None,
    ranks: Annotated[int | None, typer.Option(help="Number of ranks (CPU sites, local).")] = None,
    walltime: Annotated[
        str | None, typer.Option(help="HH:MM[:SS]; default: the site's default walltime.")
    ] = None,
    data: Annotated[str | None, typer.Option(help="Event folder; default: the site's.")] = None,
    out_file: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write the script here, not to stdout.")
    ] = None,
    study_dir: Annotated[
        Path, typer.Option("--study", help="Study folder the job would belong to.")
    ] = Path("study"),
    container: WithContainer = None,
    image: Image = None,
    cpus_per_task: CpusPerTask = None,
    threads_per_core: ThreadsPerCore = None,
    mem: Memory = None,
    reservation: Reservation = None,
    nodelist: Nodelist = None,
    exclude: Exclude = None,
    constraint: Constraint = None,
    qos: Qos = None,
    requeues: Requeues = None,
    sites_dir: SitesDir = None,
) -> None:
    """Print the job script that `submit` would submit for one job of a study."""
    from hpcscale.launch import job_path, study_site
    from hpcscale.plan import Request, plan_job
    from hpcscale.study import load as load_study
    from hpcscale.study import study_job

    the_site = study_site(
        site, sites_dir, container, requeues, image=image, cpus_per_task=cpus_per_task,
        threads_per_core=threads_per_core, memory_gb=mem, reservation=reservation,
        nodelist=nodelist, exclude=exclude, constraint=constraint, qos=qos,
    )  # fmt: skip
    plan = plan_job(the_site, Request(gpus=gpus, nodes=nodes, ranks=ranks, walltime=walltime))
    folder = study_dir.absolute()
    study_id = load_study(folder).study if (folder / "manifest.json").exists() else "<new>"
    data_path = job_path(data) or the_site.data_dir
    the_site = with_binds(the_site, [str(folder), data_path])
    _, _, text = study_job(the_site, plan, folder, study_id, data_path, [])
    if out_file is None:
        sys.stdout.write(text)
    else:
        from hpcscale.fsutil import atomic_write

        atomic_write(out_file, text, mode=0o755)
        print(f"wrote {out_file}", file=sys.stderr)


@data_app.command("generate")
def data_generate(
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
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from hpcscale import workloads

    generate = workloads.generator(workloads.check_name(workload, "--workload"))
    kind = workloads.data_kind(workload)
    _writable(out_dir, "--out")
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


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def run(
    ctx: typer.Context,
    ranks: Annotated[int, typer.Option(help="Number of local ranks.", min=1)] = 2,
    data: Annotated[
        Path | None, typer.Option(help="Event folder; default: the site's synthetic set, cached.")
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", "-o", help="Job folder; default runs/<time>-<N>r.")
    ] = None,
    walltime: Annotated[str | None, typer.Option(help="HH:MM[:SS] time limit.")] = None,
    site: Annotated[
        str, typer.Option("--site", "-s", help="A site with scheduler local.")
    ] = "local",
    sites_dir: SitesDir = None,
) -> None:
    """Train on this machine with N ranks (extra options go to `python -m hpcscale.train`)."""
    import datetime

    from hpcscale.plan import Request, plan_job
    from hpcscale.preflight import check_data, check_engine, check_train_args, job_args
    from hpcscale.run import cache_root, default_data, run_local
    from hpcscale.sites import load_site
    from hpcscale.sites.detect import resolve

    the_site = resolve(load_site(site, sites_dir or []))
    if the_site.scheduler.kind != "local":
        raise UserError(
            f"site {site} uses {the_site.scheduler.kind}; `hpcscale run` runs only "
            "sites with scheduler local (use `hpcscale submit` for the others)"
        )
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    folder = out_dir or Path("runs") / f"{stamp}-{ranks}r"
    _writable(folder, "--out")
    plan = plan_job(the_site, Request(ranks=ranks, walltime=walltime))
    core, _ = check_train_args(job_args(the_site, plan, list(ctx.args)))
    check_engine(the_site)
    if data is None:
        _writable(cache_root(), "the event cache (HPCSCALE_CACHE)")
        err = Console(stderr=True)
        with err.status("generating the default event set (once; cached)") as status:
            data = default_data(
                the_site,
                lambda done, total: status.update(f"generating events {done}/{total}"),
                model=core.model,
            )
    for note in check_data(data, ranks, job_args(the_site, plan, list(ctx.args))):
        print(note, file=sys.stderr)
    with Console(stderr=True).status(
        f"training on {plural(ranks, 'rank')} (output in {folder / 'job.log'})"
    ):
        rc, summary = run_local(the_site, ranks, data, folder, walltime, list(ctx.args))
    print_summary(summary, folder)
    if summary["status"] == "completed":
        print(f"report with: hpcscale report {folder}")
    if rc != 0 or summary["status"] != "completed":
        print(f"the ranks' own output: {folder / 'job.log'}", file=sys.stderr)
        raise typer.Exit(1)


def _sizes(text: str | None, flag: str) -> list[int]:
    """A size list as typed: comma-separated positive integers, each once. (Sizes a site cannot
    hold are refused by the plan, which knows its nodes.)"""
    if text is None:
        return []
    shown = text if len(text) <= 60 else text[:57] + "..."
    parts = [part.strip() for part in text.split(",")]
    if "" in parts:
        raise UserError(f"{flag} {shown!r}: an empty entry; give sizes like 1,2,4,8")
    try:
        sizes = [int(part) for part in parts]
    except ValueError:
        raise UserError(
            f"{flag} {shown!r}: expected comma-separated integers, e.g. 1,2,4,8"
        ) from None
    if min(sizes) < 1:
        raise UserError(f"{flag} {shown!r}: sizes must be positive integers")
    twice = sorted({n for n in sizes if sizes.count(n) > 1})
    if twice:
        raise UserError(f"{flag} {shown!r}: size {twice[0]} given twice; each size is one job")
    return sizes


Sweep = Annotated[
    list[str] | None,
    typer.Option(
        metavar="OPTION=V1,V2",
        help="Run every value of a training option, e.g. batch=64,512,1024 (repeat: a grid).",
    ),
]
Kfold = Annotated[
    int | None,
    typer.Option(help="K-fold cross-validation: K folds of the events, one job each.", min=2),
]


def _spec_arg(args: list[str], like: Path | None) -> tuple[dict[str, Any] | None, str, list[str]]:
    """The study spec a command starts from: a file given as its first argument, or a study
    folder's (``--like``); (mapping, its name, the training options that follow)."""
    from hpcscale.spec import read_base

    path = Path(args[0]) if args and not args[0].startswith("-") else None
    if path is not None and like is not None:
        raise UserError(f"give a spec file ({path}) or --like STUDY, not both")
    if path is None and like is None:
        return None, "the command line", args
    raw, where = read_base(path or like)  # type: ignore[arg-type]
    return raw, where, args[1:] if path is not None else args


def _size_flags(gpus: str | None, nodes: str | None, ranks: str | None) -> dict[str, Any]:
    given = {k: _sizes(v, f"--{k}") for k, v in (("gpus", gpus), ("nodes", nodes),
             ("ranks", ranks)) if v}  # fmt: skip
    if len(given) > 1:
        raise UserError("give exactly one of --gpus, --nodes or --ranks (comma-separated sizes)")
    return given


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def submit(
    ctx: typer.Context,
    site: Annotated[str | None, typer.Option("--site", "-s", help="Site name.")] = None,
    gpus: Annotated[str | None, typer.Option(help="GPU counts, e.g. 1,2,4,8.")] = None,
    nodes: Annotated[str | None, typer.Option(help="Node counts.")] = None,
    ranks: Annotated[str | None, typer.Option(help="Rank counts (CPU sites, local).")] = None,
    walltime: Annotated[str | None, typer.Option(help="HH:MM[:SS] per job.")] = None,
    data: Annotated[Path | None, typer.Option(help="Event folder; default: generated.")] = None,
    model: Annotated[
        str | None,
        typer.Option(help="What to train, e.g. 3dgan-small (default: the site's training.model)."),
    ] = None,
    target_loss: Annotated[float | None, typer.Option(help="TTL target loss.")] = None,
    sweep: Sweep = None,
    kfold: Kfold = None,
    like: Annotated[
        Path | None,
        typer.Option(metavar="STUDY", help="Repeat that study (its study.yaml); flags change it."),
    ] = None,
    study_dir: Annotated[Path | None, typer.Option("--study", help="Study folder.")] = None,
    dry_run: Annotated[bool, typer.Option(help="Write the scripts, submit nothing.")] = False,
    resubmit: Annotated[bool, typer.Option(help="Submit jobs of the study again.")] = False,
    wait: Annotated[
        bool | None, typer.Option(help="Wait for each job (default: on local sites).")
    ] = None,
    container: WithContainer = None,
    image: Image = None,
    cpus_per_task: CpusPerTask = None,
    threads_per_core: ThreadsPerCore = None,
    mem: Memory = None,
    reservation: Reservation = None,
    nodelist: Nodelist = None,
    exclude: Exclude = None,
    constraint: Constraint = None,
    qos: Qos = None,
    requeues: Requeues = None,
    sites_dir: SitesDir = None,
) -> None:
    """Run a study: one job per size (and per swept value, per fold). `hpcscale submit SPEC`
    runs a study spec file; the flags write the same spec (STUDY/study.yaml keeps it)."""
    from hpcscale.fsutil import folder_lock
    from hpcscale.launch import job_path, keep_spec, preflight, prepare, prepare_data
    from hpcscale.launch import submit as submit_launch
    from hpcscale.spec import parse_sweep, with_flags

    base, where, options = _spec_arg(list(ctx.args), like)
    if base is None and site is None:
        raise UserError("give --site (or a study spec file, or --like STUDY)")
    if base is None and not (gpus or nodes or ranks):
        raise UserError("give exactly one of --gpus, --nodes or --ranks (comma-separated sizes)")
    flags: dict[str, Any] = {
        **_size_flags(gpus, nodes, ranks), "site": site, "walltime": walltime,
        "data": job_path(str(data)) if data is not None else None, "model": model,
        "target_loss": target_loss, "options": options, "kfold": kfold,
        "sweep": parse_sweep(sweep) if sweep else None,
        "requests": {"container": container, "image": image, "cpus_per_task": cpus_per_task,
                     "threads_per_core": threads_per_core, "memory_gb": mem,
                     "reservation": reservation, "nodelist": nodelist, "exclude": exclude,
                     "constraint": constraint, "qos": qos, "requeues": requeues},
    }  # fmt: skip
    spec = with_flags(base, flags, where)
    if spec.optimize is not None:
        raise UserError(f"{where}: has an optimize block; run it with `hpcscale optimize`")
    folder = _study_folder(study_dir, spec.site)
    launch = prepare(spec, folder, sites_dir, "--sweep" if sweep else where)
    _writable(folder, "--study")
    preflight(launch, dry_run)
    data_path = prepare_data(launch, dry_run)
    with folder_lock(folder, "hpcscale submit"):
        keep_spec(spec, folder)
    try:
        submit_launch(launch, data_path, dry_run=dry_run, resubmit=resubmit, wait=wait)
    except KeyboardInterrupt:
        _state["notes"].append(
            f"{folder}/manifest.json lists the jobs submitted so far; they keep running "
            f"(`hpcscale cancel {folder}` stops them)"
        )
        raise


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def optimize(
    ctx: typer.Context,
    site: Annotated[str | None, typer.Option("--site", "-s", help="Site name.")] = None,
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
    method: Annotated[
        str | None, typer.Option(help="gp (Bayesian, Gaussian process; default) or evolution.")
    ] = None,
    objective: Annotated[
        str | None, typer.Option(help="Figure of merit in the summaries (default val_accuracy).")
    ] = None,
    direction: Annotated[str | None, typer.Option(help="maximize (default) or minimize.")] = None,
    trials: Annotated[int | None, typer.Option(help="Trials in all (default 12).", min=1)] = None,
    parallel: Annotated[
        int | None, typer.Option(help="Trials running at once (default 2).", min=1)
    ] = None,
    population: Annotated[
        int | None, typer.Option(help="Evolution: trials per generation.", min=2)
    ] = None,
    seed: Annotated[int | None, typer.Option(help="The search's seed.")] = None,
    walltime: Annotated[str | None, typer.Option(help="HH:MM[:SS] per trial.")] = None,
    data: Annotated[Path | None, typer.Option(help="Event folder; default: generated.")] = None,
    model: Annotated[str | None, typer.Option(help="What to train.")] = None,
    target_loss: Annotated[float | None, typer.Option(help="TTL target loss.")] = None,
    like: Annotated[
        Path | None, typer.Option(metavar="STUDY", help="Repeat that study's search.")
    ] = None,
    study_dir: Annotated[Path | None, typer.Option("--study", help="Study folder.")] = None,
    container: WithContainer = None,
    cpus_per_task: CpusPerTask = None,
    mem: Memory = None,
    qos: Qos = None,
    requeues: Requeues = None,
    sites_dir: SitesDir = None,
) -> None:
    """Search training options: each trial is a job of the study; one line per finished trial.
    Run it again (or `hpcscale optimize --study STUDY`) to resume a stopped search."""
    from hpcscale.fsutil import folder_lock
    from hpcscale.launch import job_path, keep_spec, preflight, prepare, prepare_data
    from hpcscale.optimize import driver
    from hpcscale.optimize.space import describe
    from hpcscale.spec import SPEC_NAME, load_space, read_base, with_flags
    from hpcscale.study import create_study

    base, where, options = _spec_arg(list(ctx.args), like)
    resume = base is None and site is None and study_dir is not None
    if resume and (study_dir / SPEC_NAME).exists():  # type: ignore[operator]
        base, where = read_base(study_dir)  # type: ignore[arg-type]  # the study folder alone
    if base is None and site is None:
        raise UserError("give --site and --space (or a spec file, or --study STUDY to resume)")
    flags: dict[str, Any] = {
        **_size_flags(gpus, nodes, ranks), "site": site, "walltime": walltime,
        "data": job_path(str(data)) if data is not None else None, "model": model,
        "target_loss": target_loss, "options": options,
        "optimize": {"space": load_space(space) if space else None, "method": method,
                     "objective": objective, "direction": direction, "trials": trials,
                     "parallel": parallel, "population": population, "seed": seed},
        "requests": {"container": container, "cpus_per_task": cpus_per_task, "memory_gb": mem,
                     "qos": qos, "requeues": requeues},
    }  # fmt: skip
    if flags["optimize"]["space"] is not None:
        flags["optimize"]["space"] = {k: v.model_dump(exclude_defaults=True)
                                      for k, v in flags["optimize"]["space"].items()}  # fmt: skip
    spec = with_flags(base, flags, where)
    if spec.optimize is None:
        raise UserError(f"{where}: no search space; give --space FILE (or an optimize block)")
    folder = _study_folder(study_dir, spec.site)
    launch = prepare(spec, folder, sites_dir, str(space) if space else where)
    _writable(folder, "--study")
    preflight(launch, False)
    data_path = prepare_data(launch, False)
    with folder_lock(folder, "hpcscale optimize"):
        keep_spec(spec, folder)
    request = {"sizes": [launch.plans[0].label], "data": data_path, "extra": launch.extra}
    create_study(folder, launch.site, request, "optimize")
    opt = spec.optimize
    out.print(f"study {folder} on {launch.site.name}: {opt.method} search of "
              f"{', '.join(opt.space)} for the {opt.direction[:3]}imum of {opt.objective}, "
              f"{opt.trials} trials, {opt.parallel} at a time", soft_wrap=True)  # fmt: skip
    try:
        done = driver.run(spec, launch.site, folder, data_path, launch.extra,
                          lambda line: out.print(line, soft_wrap=True))  # fmt: skip
    except KeyboardInterrupt:
        _state["notes"].append(
            f"the trials submitted keep running; run the same command again to resume the "
            f"search (`hpcscale cancel {folder}` stops them)"
        )
        raise
    top = driver.best(done, opt.direction == "maximize")
    if top is None:
        out.print(f"no trial gave a figure ({opt.objective}); see hpcscale collect {folder}")
        raise typer.Exit(1)
    out.print(f"best: trial {top.label} {describe(top.params)}: {opt.objective} "
              f"{top.value:.4g} ({folder / top.folder})", soft_wrap=True)  # fmt: skip
    out.print(f"report with: hpcscale report {folder}")


def _study_folder(study_dir: Path | None, site: str) -> Path:
    import datetime

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return study_dir or Path("studies") / f"{site}-{stamp}"


@app.command()
def status(
    study_dir: Annotated[Path, typer.Argument(help="Study folder, or one job's folder.")],
) -> None:
    """Each job's state (from its summary, else from the scheduler)."""
    from hpcscale.fsutil import folder_lock
    from hpcscale.study import is_job_folder, job_state, load, save

    def update() -> Any:
        manifest = load(study_dir)
        for record in manifest.jobs:
            record.state = job_state(study_dir, manifest, record)
        save(study_dir, manifest)
        return manifest

    if is_job_folder(study_dir):
        manifest = update()
    else:
        load(study_dir)  # a missing or foreign folder is refused before a lock file is made in it
        with folder_lock(study_dir, "hpcscale status"):
            manifest = update()
    table = Table(box=box.SIMPLE_HEAD, title=f"{study_dir} ({manifest.site})", title_justify="left")
    point = manifest.kind not in ("scaling", "job")  # a sweep's values, a fold, a trial's
    for col in ("job", "id", "ranks", "nodes", "state", *(["point"] if point else [])):
        table.add_column(col)
    for record in manifest.jobs:
        table.add_row(
            record.label, record.job_id or "-", str(record.ranks), str(record.nodes), record.state,
            *([_point_text(record)] if point else []),
        )  # fmt: skip
    out.print(table)


def _point_text(record: Any) -> str:
    from hpcscale.optimize.space import describe

    parts = [describe(record.params)] if record.params else []
    if record.fold is not None:
        parts.append(f"fold {record.fold}")
    if record.value is not None:
        parts.append(f"→ {record.value:.4g}")
    return " ".join(parts) or "-"


@app.command()
def cancel(study_dir: Annotated[Path, typer.Argument(help="Study folder.")]) -> None:
    """Cancel the study's jobs that have not finished, and those not yet submitted (a `submit`
    still running skips them)."""
    from hpcscale.fsutil import folder_lock
    from hpcscale.schedulers import cancel as cancel_job
    from hpcscale.study import DONE_STATES, job_state, load, save

    load(study_dir)  # a missing or foreign folder is refused before a lock file is made in it
    with folder_lock(study_dir, "hpcscale cancel"):
        manifest = load(study_dir)
        cancelled = 0
        for record in manifest.jobs:
            if record.job_id is None:
                if record.state == "planned":
                    record.state = "cancelled"
                    cancelled += 1
                    out.print(f"  {record.label}: not submitted yet; it will not be")
                else:
                    out.print(f"  {record.label}: {record.state}, nothing to cancel")
                continue
            state = job_state(study_dir, manifest, record)
            if state in DONE_STATES:
                out.print(f"  {record.label}: {state}, nothing to cancel")
                continue
            cancel_job(manifest.scheduler, study_dir / record.folder / "submitit", record.job_id)
            record.state = "cancelled"
            cancelled += 1
            out.print(f"  {record.label}: cancelled job {record.job_id} (was {state})")
            save(study_dir, manifest)  # after each: an interrupted cancel keeps what it did
        save(study_dir, manifest)
    out.print(f"{study_dir}: cancelled {plural(cancelled, 'job')} of {len(manifest.jobs)}")


@app.command()
def collect(
    study_dir: Annotated[Path, typer.Argument(help="Study folder, or one job's folder.")],
) -> None:
    """Gather every job's summary: DLT, TTL, epoch rate; say which jobs failed and why."""
    print_collect(study_dir)


@app.command()
def report(
    studies: Annotated[
        list[Path], typer.Argument(help="Study folders (side by side), or job folders.")
    ],
    out_dir: Annotated[
        Path | None, typer.Option("--out", "-o", help="Report folder; default STUDY/report.")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="md or html.")] = "md",
) -> None:
    """Tables, scaling fits with 95 % intervals, plots and results.json for the studies."""
    from hpcscale.analysis.report import build_report

    folder = out_dir or studies[0] / "report"
    _writable(folder, "--out")
    path = build_report(studies, folder, fmt)
    print(f"wrote {path} (and results.json, PNG figures beside it)")


@container_app.command("render")
def container_render(
    site: Annotated[str, typer.Option("--site", "-s", help="Site name.")],
    fmt: Annotated[str, typer.Option("--format", help="singularity or docker.")] = "singularity",
    sites_dir: SitesDir = None,
) -> None:
    """Print the site's container recipe (Apptainer/Singularity definition or Dockerfile)."""
    from hpcscale.containers.recipe import recipe
    from hpcscale.sites import load_site
    from hpcscale.sites.detect import resolve

    if fmt not in ("singularity", "docker"):
        raise UserError(f"--format {fmt!r}: choose singularity or docker")
    sys.stdout.write(recipe(resolve(load_site(site, sites_dir or [])), fmt))  # type: ignore[arg-type]


@container_app.command("build")
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
    from hpcscale.containers.build import BUILDERS, build
    from hpcscale.sites import load_site
    from hpcscale.sites.detect import resolve

    if builder is not None and builder not in BUILDERS:
        raise UserError(f"--builder {builder!r}: choose one of {', '.join(BUILDERS)}")
    started = time.monotonic()

    def say(line: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {line}", file=sys.stderr, flush=True)

    record = build(resolve(load_site(site, sites_dir or [])), out_path, builder, base, say)
    size = record.get("size_bytes")
    shown = f", {size / 2**30:.2f} GiB" if size else ""
    print(f"built {record['image']} with {record['builder']}{shown}: {record['digest']}")


USER_ERRNOS = {
    errno.ENOSPC: "the file system is full; free space or choose another folder",
    errno.EDQUOT: "the disk quota is exceeded; free space or choose another folder",
    errno.EROFS: "the file system is read-only; choose a writable folder",
    errno.EACCES: "permission denied; choose a folder you can write to, or fix its permissions",
    errno.EPERM: "operation not permitted; check the path's owner and permissions",
    errno.ENOENT: "no such file or folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "is a folder, not a file",
    errno.EEXIST: "already exists",
    errno.ENAMETOOLONG: "the name is too long",
    errno.EMFILE: "too many open files; raise `ulimit -n`",
}


def _interrupt(signum: int, _frame: object) -> None:
    """SIGINT (Ctrl-C) and SIGTERM (a login session ending, `kill`): noted, then a plain
    KeyboardInterrupt, the one type the standard library treats specially (``subprocess`` does
    not then wait on a child it was waiting for); ``finally`` and ``with`` blocks on the way up
    run, so locks are released, and writes are atomic."""
    _state["interrupted"] = signum
    raise KeyboardInterrupt


def _interrupt_again(hook: Any) -> Any:
    """An unraisable-exception hook for Ctrl-C landing inside a callback Python cannot raise
    from (a weakref callback of the import system, a ``__del__``): instead of "Exception
    ignored in: ... KeyboardInterrupt" and a lost Ctrl-C, the signal is delivered again, to be
    raised where the program can stop."""

    def again(args: Any) -> None:
        if isinstance(args.exc_value, KeyboardInterrupt) and _state["interrupted"]:
            signal.raise_signal(_state["interrupted"])
            return
        hook(args)

    return again


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point and the one error boundary of every command.

    A ``UserError``, a usage error, or an ``OSError`` a user can fix (full or read-only file
    system, permission, missing path) is one line and exit code 2; Ctrl-C (SIGINT) or SIGTERM
    one line ("interrupted", plus what the command noted in ``_state["notes"]``) and 130 or
    143; anything else is a bug: one line naming the log file that holds the traceback, exit 1.
    ``--verbose`` prints the traceback as well.
    """
    _state.update(writing=[], notes=[], interrupted=None)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, _interrupt)
    unraisable = sys.unraisablehook
    sys.unraisablehook = _interrupt_again(unraisable)
    try:
        code = app(args=argv, prog_name="hpcscale", standalone_mode=False)
    except UserError as exc:
        _fail(str(exc), exc.exit_code)
    except typer.Abort:  # Ctrl-C or end of input at a prompt
        _state["interrupted"] = _state["interrupted"] or signal.SIGINT
        code = 130
    except typer.TyperException as exc:  # a usage error: unknown option, bad value
        if type(exc).__name__ == "NoArgsIsHelpError":  # `hpcscale` alone: its help
            print(exc.format_message())  # type: ignore[attr-defined]
            sys.exit(getattr(exc, "exit_code", 2))
        ctx = getattr(exc, "ctx", None)
        where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        _fail(f"{message}{where}", getattr(exc, "exit_code", 2))
    except KeyboardInterrupt:  # before the handler was in place
        _state["interrupted"] = _state["interrupted"] or signal.SIGINT
        code = 130
    except OSError as exc:
        hint = USER_ERRNOS.get(exc.errno or 0)
        if hint is None:
            _internal(exc)
        where = (
            f"{exc.filename}: "
            if exc.filename is not None
            else f"writing {_state['writing'][-1]}: "
            if _state["writing"]
            else ""
        )
        _fail(f"{where}{exc.strerror or exc} ({hint})" if exc.strerror else f"{where}{hint}", 2)
    except Exception as exc:  # the boundary: a bug becomes one line and a log
        _internal(exc)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        sys.unraisablehook = unraisable
    if _state["interrupted"]:  # typer returns 130 for a KeyboardInterrupt; say what happened
        signum = signal.Signals(_state["interrupted"])
        notes = "".join(f"; {note}" for note in _state["notes"])
        _fail(f"interrupted ({signum.name}){notes}", 128 + signum, prefix="")
    sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str, code: int, prefix: str = "error: ") -> NoReturn:
    if _state["verbose"] and sys.exc_info()[0] is not None:
        traceback.print_exc()
    print(prefix + one_line(message), file=sys.stderr)
    sys.exit(code)


def _internal(exc: BaseException) -> NoReturn:
    """An unexpected exception: its traceback goes to a log file, the user gets one line."""
    import datetime
    import tempfile

    from hpcscale.run import cache_root

    text = "".join(traceback.format_exception(exc))
    name = f"hpcscale-{datetime.datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}.log"
    log = None
    for folder in (cache_root() / "logs", Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(f"hpcscale {__version__}\nargv: {sys.argv}\n\n{text}")
            log = folder / name
            break
        except OSError:
            continue
    if _state["verbose"]:
        print(text, file=sys.stderr, end="")
    where = f"traceback in {log}" if log else "the traceback could not be saved"
    what = cut(escaped(f"{type(exc).__name__}: {exc}"), 200)
    print(
        f"internal error: {what}; {where}; please report it with that file",
        file=sys.stderr,
    )
    sys.exit(1)
