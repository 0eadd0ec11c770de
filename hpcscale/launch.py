"""From a study spec to submitted jobs: the site with the study's requests, one ``Point`` per
job (sizes × sweep grid × folds), the checks made before anything is submitted, the fold data
sets, and the spec kept in the study folder. ``hpcscale submit`` and ``hpcscale optimize`` both
start here; ``cli.py`` only turns flags into a ``StudySpec``.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpcscale.errors import UserError
from hpcscale.plan import JobPlan, Request, plan_job
from hpcscale.sites.models import Site
from hpcscale.spec import SPEC_NAME, StudySpec, dump, point_args, point_label
from hpcscale.study import Point


@dataclass
class Launch:
    """A study ready to submit: its site, jobs, data and folder."""

    spec: StudySpec
    site: Site
    folder: Path
    points: list[Point]
    plans: list[JobPlan]
    data: Path | None  # the study's data set as given (None: the site's, not yet made)
    extra: list[str] = field(default_factory=list)


def study_site(
    name: str,
    sites_dir: list[Path] | None,
    container: bool | None,
    requeues: int | None,
    image: str | None = None,
    **requests: object,
) -> Site:
    """The site a study's jobs run on, for `render` and `submit` alike (so that render shows
    what submit submits): the descriptor, the container switch and image, the per-study
    scheduler requests (validated again) and the requeue limit."""
    from hpcscale.containers.switch import switched
    from hpcscale.sites import load_site
    from hpcscale.sites.detect import resolve
    from hpcscale.sites.registry import with_requests

    site = resolve(load_site(name, sites_dir or []))
    site = with_requests(switched(site, container, image, job_path), **requests)
    if requeues is None:
        return site
    return site.model_copy(update={"limits": site.limits.model_copy(update={"requeues": requeues})})


def job_path(path: str | None) -> str | None:
    """A path the user typed, made absolute for a job script (which runs elsewhere); a path
    with a variable (``${SCRATCH}/events``) is left to the job's shell."""
    if path is None or "$" in path:
        return path
    return str(Path(path).absolute())


def points(spec: StudySpec, folder: Path) -> list[Point]:
    """The study's jobs: every size × every point of the sweep grid × every fold (an
    optimisation adds its trials as it goes, ``optimize.driver``)."""
    out = []
    for size in spec.sizes:
        request = Request(**{spec.size_key: size}, walltime=spec.walltime)  # type: ignore[arg-type]
        tag = f"{size}{spec.size_key[0]}"
        for params in spec.grid():
            base = point_label(tag, params)
            args = tuple(point_args(params))
            if not spec.kfold:
                label = base if params else None  # a plain size keeps its label (8g, 2r)
                out.append(Point(request, label, args, params=params))
                continue
            for i in range(spec.kfold):
                data = str(Path(folder).absolute() / "folds" / f"fold-{i}")
                out.append(Point(request, f"{base}-fold{i}", args, data, params, fold=i))
    return out


def prepare(spec: StudySpec, folder: Path, sites_dir: list[Path] | None, where: str) -> Launch:
    """The site, the jobs and their shapes; every job's options parsed as its ranks will parse
    them (a bad sweep value is refused here, naming ``where`` and the job)."""
    from hpcscale.preflight import check_train_args, job_args

    r = spec.requests
    site = study_site(spec.site, sites_dir, r.container, r.requeues, image=r.image, **r.scheduler())
    pts = points(spec, folder) if spec.optimize is None else []
    plans = [plan_job(site, p.request) for p in pts]
    extra = spec.train_args()
    first = plan_job(site, Request(**{spec.size_key: spec.sizes[0]}, walltime=spec.walltime))  # type: ignore[arg-type]
    check_train_args(job_args(site, first, extra))
    for point, plan in zip(pts, plans, strict=True):
        if point.args:
            try:
                check_train_args(job_args(site, plan, [*extra, *point.args]))
            except UserError as exc:
                raise UserError(f"{where}: job {point.label}: {exc}") from None
    if spec.optimize is not None:
        _check_space(spec, site, first, extra, where)
        if spec.optimize.method == "gp" and importlib.util.find_spec("optuna") is None:
            raise UserError(
                "optimize.method gp needs Optuna, which is not installed in this Python; "
                "pip install 'hpcscale[optimize]' (or use --method evolution)"
            )
    data = Path(spec.data) if spec.data else None
    return Launch(spec, site, folder, pts, plans or [first], data, extra)


def _check_space(spec: StudySpec, site: Site, plan: JobPlan, extra: list[str], where: str) -> None:
    """Every searched option exists for the model and takes its bounds and choices."""
    from hpcscale.preflight import check_train_args, job_args

    assert spec.optimize is not None
    for name, p in spec.optimize.space.items():
        values = p.choices if p.choices is not None else [p.low, p.high]
        for v in values:
            if p.type == "int" and p.choices is None:
                v = int(v)  # type: ignore[arg-type]
            try:
                check_train_args(job_args(site, plan, [*extra, *point_args({name: v})]))  # type: ignore[dict-item]
            except UserError as exc:
                raise UserError(f"{where}: search space option {name}: {exc}") from None


def keep_spec(spec: StudySpec, folder: Path) -> None:
    """Write the spec beside the manifest (the latest submit's: a study submitted again with more
    sizes keeps the spec that lists them). A study of another kind, or an optimisation of
    another search, is refused: its trials would mean nothing to this one (a resumed one may
    have a larger budget or parallelism)."""
    from hpcscale.fsutil import atomic_write
    from hpcscale.spec import load

    path = Path(folder) / SPEC_NAME
    if path.exists():
        old = load(path)
        what = [k for k in ("kind", "optimize") if _comparable(old)[k] != _comparable(spec)[k]]
        if what:
            raise UserError(
                f"{folder} holds a study made from another spec (its {' and '.join(what)} "
                f"differ: see {path}); choose another --study folder"
            )
    atomic_write(path, dump(spec))


def _comparable(spec: StudySpec) -> dict[str, Any]:
    opt = (
        spec.optimize.model_dump(mode="json", exclude={"trials", "parallel"})
        if spec.optimize
        else None
    )
    return {"kind": spec.kind, "optimize": opt}


def prepare_data(launch: Launch, dry_run: bool) -> str:
    """The data path the jobs get (made absolute), after generating the site's default set if
    none was given, checking it, and writing the K fold data sets."""
    from rich.console import Console

    from hpcscale.preflight import check_data, check_writable, job_args
    from hpcscale.run import cache_root, default_data

    site, data = launch.site, launch.data
    if launch.spec.kfold and data is not None and "$" in str(data):
        raise UserError(
            f"--kfold: --data {data} has a variable; K-fold writes the folds from the data set "
            "here, so give a folder on this machine"
        )
    if data is None and not dry_run:
        check_writable(cache_root(), "the event cache (HPCSCALE_CACHE)")
        model = _model(launch)
        with Console(stderr=True).status("generating the site's default event set (cached)"):
            data = default_data(site, model=model)
    if data is not None and not dry_run:
        if site.scheduler.kind != "local" and not data.exists():
            print(f"note: --data {data} is not on this machine; the jobs read it there")
        else:
            biggest = max(launch.plans, key=lambda p: p.ranks)
            ranks = biggest.ranks
            for note in check_data(data, ranks, job_args(site, biggest, launch.extra)):
                print(note, file=sys.stderr)
    if launch.spec.kfold and not dry_run and data is not None:
        from hpcscale.data.folds import fold_sets

        with Console(stderr=True).status(f"writing {launch.spec.kfold} folds of {data}"):
            fold_sets(data, launch.spec.kfold, launch.folder / "folds")
    return str(job_path(str(data)) if data is not None else site.data_dir)


def _model(launch: Launch) -> str:
    from hpcscale.preflight import check_train_args, job_args

    core, _ = check_train_args(job_args(launch.site, launch.plans[0], launch.extra))
    return str(core.model)


def preflight(launch: Launch, dry_run: bool) -> None:
    """What can be known before anything slow: the scheduler, the container, the engine."""
    from hpcscale.preflight import check_container, check_engine, check_scheduler, check_writable

    check_writable(launch.folder, "--study")
    if not dry_run:
        check_scheduler(launch.site)
        check_container(launch.site)
        check_engine(launch.site)


def submit(launch: Launch, data: str, *, dry_run: bool, resubmit: bool, wait: bool | None) -> None:
    """Submit the study's jobs, saying one line per job; on local sites (or with ``wait``) wait
    for them, one at a time for a scaling study or a sweep (each job has the machine to itself,
    so their timings compare), all at once for K folds (their spread is the point)."""

    from rich.console import Console

    from hpcscale.containers.runtime import with_binds
    from hpcscale.fsutil import folder_lock
    from hpcscale.study import job_state, load, save, submit_study
    from hpcscale.tables import duration_text, plural, print_collect

    out = Console()
    folder = launch.folder
    wait = launch.site.scheduler.kind == "local" if wait is None else wait
    together = launch.spec.kind == "kfold"
    jobs: list[Any] = []

    def on_job(record, job) -> None:  # type: ignore[no-untyped-def]
        size = (
            f"{plural(record.ranks, 'rank')} on {plural(record.nodes, 'node')}, "
            f"walltime {duration_text(record.walltime_s)}"
        )
        if job is None:
            state = (
                f"dry-run: {folder / record.script} ({size})"
                if record.state == "dry-run"
                else (f"already {record.state} as job {record.job_id} (use --resubmit)")
            )
            out.print(f"  {record.label}: {state}", soft_wrap=True)
            return
        out.print(f"  {record.label}: submitted as job {job.job_id} ({size})", soft_wrap=True)
        jobs.append(job)
        if wait and not together:
            _wait([job], f"job {record.label} running")

    out.print(f"study {folder} on {launch.site.name}:")
    # the study folder (K folds' data sets included) and the data, bound into the container
    site = with_binds(launch.site, [str(Path(folder).absolute()), data])
    submit_study(
        site, launch.points, folder, Path(data), launch.extra, dry_run=dry_run,
        resubmit=resubmit, on_job=on_job, kind=launch.spec.kind,
    )  # fmt: skip
    if wait and together and jobs:
        _wait(jobs, f"{plural(len(jobs), 'job')} running together")
    if wait and not dry_run:
        with folder_lock(folder, "hpcscale submit"):
            manifest = load(folder)
            for record in manifest.jobs:
                record.state = job_state(folder, manifest, record)
            save(folder, manifest)
        print_collect(folder)
    elif dry_run:
        out.print(f"scripts only; submit without --dry-run to run them (study folder {folder})")
    else:
        out.print(f"follow with: hpcscale status {folder}; then hpcscale collect {folder}")


def _wait(jobs: list[Any], what: str) -> None:
    import time

    from rich.console import Console

    with Console(stderr=True).status(what):
        while not all(job.done() for job in jobs):
            time.sleep(2)
