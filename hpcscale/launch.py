"""From a study spec to submitted jobs, the one pipeline of ``submit``, ``optimize``, ``render``
and ``run``: ``resolve`` turns a ``StudySpec`` into typed, checked objects once (the site with
the study's requests, one ``submission.Job`` per size × sweep point × fold, each planned and its
options parsed as its ranks will parse them); ``stage`` checks what can be known before
anything slow and readies the data; ``submit`` hands the jobs to the scheduler. The command
line (``hpcscale.cli``) only turns flags into a ``StudySpec``.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rich.console import Console

from hpcscale import workloads
from hpcscale.containers import imagedata
from hpcscale.containers.runtime import with_binds
from hpcscale.errors import UserError
from hpcscale.fmt import duration_text, plural
from hpcscale.fsutil import atomic_write, cache_root, folder_lock
from hpcscale.keptsite import keep_descriptor, with_kept
from hpcscale.plan import Request
from hpcscale.preflight import (
    check_container,
    check_data,
    check_engine,
    check_gpu_options,
    check_scheduler,
    check_writable,
)
from hpcscale.run import default_data
from hpcscale.sites import load_site
from hpcscale.sites.detect import resolve as resolve_node
from hpcscale.sites.models import Site
from hpcscale.sites.registry import with_requests
from hpcscale.sites.switch import engine_switched, switched
from hpcscale.spec import SPEC_NAME, StudySpec, difference, dump, point_args, point_label
from hpcscale.spec import load as load_spec
from hpcscale.study import job_state, load, save
from hpcscale.submission import Job, Point, resolve_job, submit_study
from hpcscale.tables import print_collect


@dataclass
class Launch:
    """A study resolved: its site, model, jobs, data and folder. ``shape`` is a job of the
    first size with the study's options only (an optimisation's trials have its shape)."""

    spec: StudySpec
    site: Site
    folder: Path
    model: str
    jobs: list[Job]
    shape: Job
    data: Path | None  # the study's data set as given (None: the site's, not yet made)
    sites_dir: list[Path] = field(default_factory=list)  # where its descriptor was found

    @property
    def args(self) -> list[str]:
        """The training options every job gets (before a point's own)."""
        return self.spec.train_args()

    @property
    def placements(self) -> list[str]:
        """Each job's ``--data-placement`` (a command's job: shared, it reads its own data)."""
        return [getattr(job.core, "data_placement", "shared") for job in self.jobs]

    def bound(self, data: str) -> Site:
        """The site with the study folder (K folds' data sets included) and the data bound
        into the container, as the jobs are submitted; not the data where every job reads the
        image's copy (``--data-placement image``)."""
        paths = [str(Path(self.folder).absolute())]
        if set(self.placements) != {"image"}:
            paths.append(data)
        return with_binds(self.site, paths)


def study_folder_id(folder: Path) -> str:
    """The id of the study in ``folder``, or ``<new>`` for a study not yet made."""
    return load(folder).study if (Path(folder) / "manifest.json").exists() else "<new>"


def study_site(spec: StudySpec, sites_dir: list[Path] | None) -> Site:
    """The site a study's jobs run on, for `render` and `submit` alike (so that render shows
    what submit submits): the descriptor, the container switch and image, the per-study
    scheduler requests (validated again) and the requeue limit."""
    r = spec.requests
    site = resolve_node(load_site(spec.site, sites_dir or []))
    site = with_requests(switched(site, r.container, r.image, job_path), **r.scheduler())
    site = engine_switched(site, r.engine)  # --engine horovod here: horovodrun starts it
    if r.requeues is None:
        return site
    limits = site.limits.model_copy(update={"requeues": r.requeues})
    return site.model_copy(update={"limits": limits})


def job_path(path: str | None) -> str | None:
    """A path the user typed, made absolute for a job script (which runs elsewhere); a path
    with a variable (``${SCRATCH}/events``) is left to the job's shell."""
    if path is None or "$" in path:
        return path
    return str(Path(path).absolute())


def points(spec: StudySpec, folder: Path) -> list[Point]:
    """The study's jobs: every size × every point of the sweep grid × every fold (an
    optimisation adds its trials as it goes, ``optimize.driver``)."""
    out = [
        replace(point, label=f"{point.label or tag}-rep{i + 1}", repeat=i + 1)
        if spec.repeats > 1 else point
        for point, tag in _points(spec, folder)
        for i in range(spec.repeats)
    ]  # fmt: skip
    return out


def _points(spec: StudySpec, folder: Path) -> list[tuple[Point, str]]:
    """Every point once, with the label of its size (``2r``)."""
    out = []
    for size in spec.sizes:
        request = Request(**{spec.size_key: size}, walltime=spec.walltime)  # type: ignore[arg-type]
        tag = f"{size}{spec.size_key[0]}"
        for params in spec.grid():
            base = point_label(tag, params)
            args = tuple(point_args(params))
            if not spec.kfold:
                label = base if params else None  # a plain size keeps its label (8g, 2r)
                out.append((Point(request, label, args, params=params), tag))
                continue
            for i in range(spec.kfold):
                data = str(Path(folder).absolute() / "folds" / f"fold-{i}")
                out.append((Point(request, f"{base}-fold{i}", args, data, params, fold=i), tag))
    return out


def resolve(spec: StudySpec, folder: Path, sites_dir: list[Path] | None, where: str) -> Launch:
    """The study, resolved once: the site, the model, every job planned and its options parsed
    as its ranks will parse them (a bad sweep value is refused here, naming ``where`` and the
    job), and an optimisation's search space checked against the model's options."""
    sites_dir = with_kept(sites_dir, folder)  # a study's own descriptor (``keptsite``)
    site = study_site(spec, sites_dir)
    command = spec.command or ()  # a training command's study: the wrapper's options
    model = "command" if command else workloads.check_name(spec.model or site.training.model)
    args = spec.train_args()
    size = Request(**{spec.size_key: spec.sizes[0]}, walltime=spec.walltime)  # type: ignore[arg-type]
    shape = resolve_job(site, Point(size), model, args, command)
    jobs = []
    for point in points(spec, folder) if spec.optimize is None else []:
        try:
            jobs.append(resolve_job(site, point, model, args, command))
        except UserError as exc:
            if not point.args:
                raise
            raise UserError(f"{where}: job {point.label}: {exc}") from None
    if spec.optimize is not None:
        from hpcscale.optimize.objective import check_objective  # imports the workload (torch)

        check_objective(spec.optimize.objective, model)
        _check_space(spec, site, shape, where)
        if spec.optimize.method == "gp" and importlib.util.find_spec("optuna") is None:
            raise UserError(
                "optimize.method gp needs Optuna, which is not installed in this Python; "
                "pip install 'hpcscale[optimize]' (or use --method evolution)"
            )
    data = Path(spec.data) if spec.data else None
    return Launch(spec, site, folder, model, jobs or [shape], shape, data, sites_dir)


def _check_space(spec: StudySpec, site: Site, shape: Job, where: str) -> None:
    """Every searched option exists for the model and takes its bounds and choices."""
    assert spec.optimize is not None
    for name, p in spec.optimize.space.items():
        values = p.choices if p.choices is not None else [p.low, p.high]
        for v in values:
            if p.type == "int" and p.choices is None:
                v = int(v)  # type: ignore[arg-type]
            point = Point(shape.point.request, args=tuple(point_args({name: v})))  # type: ignore[dict-item]
            try:
                resolve_job(site, point, shape.model, shape.args)
            except UserError as exc:
                raise UserError(f"{where}: search space option {name}: {exc}") from None


def keep_spec(launch: Launch, dry_run: bool, resubmit: bool) -> None:
    """The study folder is the one record of what its study is: the spec is written beside the
    manifest when the study is new (a dry run's too: its scripts are the study), or when a
    submit adds sizes or asks for ``--resubmit``; a dry run never changes a kept spec. A spec
    that computes something else (another model, data, options, sweep, kind or search) is
    refused in one line naming the difference, unless ``--resubmit`` is asked for."""
    spec, folder = launch.spec, launch.folder
    path = Path(folder) / SPEC_NAME
    if path.exists():
        old = load_spec(path)
        same_site = old.site == spec.site
        old_model = old.model or (launch.site.training.model if same_site else "its site's")
        changed = difference(old, spec, (old_model, launch.model))
        if changed and not (resubmit and spec.optimize is None and same_site):
            again = (
                "submit with --resubmit to run it again with these, or choose"
                if spec.optimize is None and old.optimize is None and same_site
                else "choose"
            )
            raise UserError(
                f"{folder} holds another study ({'; '.join(changed)}); {again} another --study "
                f"folder (or repeat it with --like {folder})"
            )
        if dry_run or (dump(old) == dump(spec) and not resubmit):
            return
    atomic_write(path, dump(spec))
    keep_descriptor(folder, spec.site, launch.sites_dir)


def stage(launch: Launch, dry_run: bool, command: str, resubmit: bool = False) -> str:
    """What can be known before anything slow (the folder, the scheduler, the container, the
    engine), then the data; returns the data path the jobs get. A study's spec is kept in its
    folder once it has passed every check (``keep_spec``)."""
    check_writable(launch.folder, "--study")
    check_gpu_options(launch.site, [job.config for job in launch.jobs])
    if (launch.folder / SPEC_NAME).exists():  # refused before any data is generated
        keep_spec(launch, True, resubmit)
    if not dry_run:
        check_scheduler(launch.site)
        check_container(launch.site)
        check_engine(launch.site)
    if launch.spec.kfold and "image" in launch.placements:
        raise UserError(
            "--data-placement image with --kfold: each fold is its own data set, written "
            "into the study folder, and an image holds one; use shared or node-local"
        )
    imagedata.check_site(launch.site, launch.placements)
    data = prepare_data(launch, dry_run)
    if not dry_run:  # the image may be built where the jobs run
        imagedata.check(launch.site, data, launch.placements)
    with folder_lock(launch.folder, command):
        keep_spec(launch, dry_run, resubmit)
    return data


def prepare_data(launch: Launch, dry_run: bool) -> str:
    """The data path the jobs get (made absolute), after generating the site's default set if
    none was given, checking it, and writing the K fold data sets."""
    site, data = launch.site, launch.data
    if launch.spec.command:  # the command reads its own data; the jobs get the study folder
        return str(job_path(str(data)) if data is not None else Path(launch.folder).absolute())
    if launch.spec.kfold and data is not None and "$" in str(data):
        raise UserError(
            f"--kfold: --data {data} has a variable; K-fold writes the folds from the data set "
            "here, so give a folder on this machine"
        )
    if data is None and not dry_run:
        check_writable(cache_root(), "the event cache (HPCSCALE_CACHE)")
        with Console(stderr=True).status("generating the default data set (once; cached)") as bar:
            data = default_data(
                site, lambda done, total: bar.update(f"generating the default data set "
                                                     f"{done}/{total} (once; cached)"),
                model=launch.model,
            )  # fmt: skip
    if data is not None and not dry_run:
        if site.scheduler.kind != "local" and not data.exists():
            print(f"note: --data {data} is not on this machine; the jobs read it there")
        else:
            biggest = max(launch.jobs, key=lambda job: job.plan.ranks)
            for note in check_data(data, biggest.plan.ranks, biggest.core, biggest.config):
                print(note, file=sys.stderr)
    if launch.spec.kfold and not dry_run and data is not None:
        from hpcscale.data.folds import fold_sets  # numpy: only K folds need it at start-up

        with Console(stderr=True).status(f"writing {launch.spec.kfold} folds of {data}"):
            fold_sets(data, launch.spec.kfold, launch.folder / "folds")
    return str(job_path(str(data)) if data is not None else site.data_dir)


def submit(launch: Launch, data: str, *, dry_run: bool, resubmit: bool, wait: bool | None) -> None:
    """Submit the study's jobs, saying one line per job; on local sites (or with ``wait``) wait
    for them, one at a time for a scaling study or a sweep (each job has the machine to itself,
    so their timings compare), all at once for K folds (their spread is the point)."""
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
    submit_study(
        launch.bound(data), launch.jobs, folder, Path(data), dry_run=dry_run, resubmit=resubmit,
        on_job=on_job, kind=launch.spec.kind,
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
    with Console(stderr=True).status(what):
        while not all(job.done() for job in jobs):
            time.sleep(2)
