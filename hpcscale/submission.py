"""A study's jobs, resolved and submitted: ``Point`` (where a job stands in its study), ``Job``
(a point planned and its options parsed once, ``resolve_job``), the script each job submits
(``study_job``: the one script ``render``, ``submit --dry-run`` and ``submit`` show and submit)
and the submission itself (``submit_study``, ``submit_point``), every change to the study's
manifest (``study.py``) one transaction under its lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpcscale.command.config import parse as parse_command
from hpcscale.command.jobs import command_argv
from hpcscale.command.task import CommandTask
from hpcscale.errors import UserError
from hpcscale.fsutil import atomic_write, folder_lock
from hpcscale.plan import JobPlan, Request, check_model_parallel
from hpcscale.render.script import JobSpec, train_args
from hpcscale.schedulers.jobs import job_script, make_executor, plan_job
from hpcscale.sites.models import Site
from hpcscale.study import JobRecord, StudyManifest, load, open_study, save
from hpcscale.train.config import parse
from hpcscale.train.engine import mw_shape
from hpcscale.train.entry import TrainTask


def rank_argv(
    site: Site,
    plan: JobPlan,
    study_id: str,
    data: Path | str,
    job_dir: Path,
    model: str | None,
    args: Sequence[str],
    label: str | None = None,
) -> list[str]:
    """Arguments of the training core for one job of the study (submitit calls the core with
    them directly, so there is no ``python -m hpcscale.train`` in front)."""
    return train_args(
        site,
        plan,
        data=str(data),
        out=str(job_dir),
        model=model,
        extra=["--study", study_id, "--job", label or plan.label, *args],
    )


def study_job(
    site: Site,
    plan: JobPlan,
    study: Path,
    study_id: str,
    data: Path | str,
    model: str | None,
    args: Sequence[str],
    label: str | None = None,
    command: Sequence[str] = (),
) -> tuple[JobSpec, Path, str]:
    """One job of a study: its spec, its submitit folder and the script it submits (the one
    script ``render``, ``submit --dry-run`` and ``submit`` all show and submit). ``label``: the
    job's name in the study (default: its size's, ``plan.label``); ``model`` None: the site's."""
    label = label or plan.label
    job_dir = Path(study) / "jobs" / label
    name = f"hpcscale-{site.name}-{label}"
    if command:  # the rank measures the command (hpcscale.command)
        argv = command_argv(site, plan, out=str(job_dir), command=command, study=study_id,
                            job=label, extra=args)  # fmt: skip
        spec = JobSpec(name, ["true"], rank_args=argv,
                       rank_what="the measured command (hpcscale.command)")  # fmt: skip
    else:
        spec = JobSpec(
            name=name,
            command=["true"],  # replaced by submitit's rank command
            rank_args=rank_argv(site, plan, study_id, data, job_dir, model, args, label),
        )
    folder = job_dir / "submitit"
    return spec, folder, job_script(site, plan, spec, folder)


RESUBMITTABLE = {"planned", "dry-run", "submit-failed"}  # states a plain re-submit submits


@dataclass(frozen=True)
class Point:
    """One job of a study: its size, and what else sets it apart (a sweep's values, a fold, an
    optimisation's trial). ``label`` names its folder (default: the size's label); ``args`` are
    its own training options (after the study's); ``data`` its own data set (a fold's)."""

    request: Request
    label: str | None = None
    args: tuple[str, ...] = ()
    data: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    fold: int | None = None
    trial: int | None = None
    generation: int | None = None
    repeat: int | None = None  # which of the study's --repeats


@dataclass(frozen=True)
class Job:
    """One job of a study, resolved once (``resolve_job``): where it stands in the study
    (``point``), its shape (``plan``), the model and the training options after the site's
    defaults (the study's, then the point's own), and those options parsed as its ranks will
    parse them (``core``, the training core's config; ``config``, the workload's)."""

    point: Point
    plan: JobPlan
    model: str
    args: tuple[str, ...]
    core: Any  # CoreConfig; a command's job: the measuring wrapper's CommandConfig
    config: Any
    command: tuple[str, ...] = ()  # a training command run on every rank (hpcscale.command)

    @property
    def label(self) -> str:
        return self.point.label or self.plan.label


def resolve_job(
    site: Site, point: Point, model: str, args: Sequence[str], command: Sequence[str] = ()
) -> Job:
    """The job ``point`` of a study on ``site``: planned (a size the site cannot hold is refused)
    and its options parsed as the ranks will parse them (an unknown option or a bad value is
    refused here, in one line, not in every rank after the job starts). ``command``: a training
    command's job, its options the measuring wrapper's."""
    plan = plan_job(site, point.request)
    every = (*args, *point.args)
    if command:
        argv = command_argv(site, plan, out="-", command=command, extra=every)
        wrapper, _ = parse_command(argv)
        return Job(point, plan, "command", every, wrapper, None, tuple(command))
    core, config = parse(train_args(site, plan, data="-", out="-", model=model, extra=every))
    check_model_parallel(site, plan, core.model_parallel)
    mw_shape.check(core, plan.ranks)
    return Job(point, plan, model, every, core, config)


def submit_study(
    site: Site,
    jobs: Sequence[Job],
    study: Path,
    data: Path,
    dry_run: bool = False,
    resubmit: bool = False,
    on_job: Callable[[JobRecord, Any], None] | None = None,
    kind: str = "scaling",
) -> StudyManifest:
    """Render and submit every job (``resolve_job``'s); ``on_job(record, submitit_job)`` after
    each (``submitit_job`` None: the job was not submitted now). ``resubmit``: submit every job
    again, also those submitted, finished or cancelled before (their folders are kept, renamed).

    Every change to the manifest is one transaction under the study's lock (read, change,
    write atomically), so a second ``submit`` into the same study, or a ``cancel``, can run at the
    same time: each job is submitted once, and a job that ``cancel`` marked before it was
    submitted is not submitted. The lock is not held while ``on_job`` waits for a job.
    """
    study = Path(study).resolve()
    sizes = list(dict.fromkeys(job.plan.label for job in jobs))  # in order, each once
    first = jobs[0] if jobs else None
    request = {"sizes": sizes, "data": str(data), "model": first.model if first else None,
               "extra": list(first.args) if first else []}  # fmt: skip
    with folder_lock(study, "hpcscale submit"):
        manifest = open_study(study, site, request, kind)
        before = {j.label: (j.state, j.job_id) for j in manifest.jobs}
        # The whole study is listed from the start: `cancel` can stop what is not submitted yet.
        for job in jobs:
            if manifest.job(job.label) is None:
                manifest.jobs.append(_record(job, "planned"))
        save(study, manifest)
    for job in jobs:
        with folder_lock(study, "hpcscale submit"):
            manifest = load(study)
            record = manifest.job(job.label)
            if record is None:  # listed above; jobs are never removed
                raise RuntimeError(f"{study}: job {job.label} vanished from the manifest")
            # --resubmit: the jobs as they were when this submit began (not one that another
            # submit has just submitted, nor one that `cancel` has just stopped)
            # (never in a dry run: it leaves a submitted job's records and state as they are)
            again = (
                resubmit and not dry_run and before.get(job.label) == (record.state, record.job_id)
            )
            if record.state in RESUBMITTABLE or again:
                record, submitted = _submit_one(site, job, study, manifest, data, dry_run)
            else:
                submitted = None
        if on_job:
            on_job(record, submitted)
    with folder_lock(study, "hpcscale submit"):
        return load(study)


def submit_point(
    site: Site, job: Job, study: Path, data: Path, command: str
) -> tuple[JobRecord, Any]:
    """List and submit one more job in an existing study, in one transaction (an optimiser's
    next trial). A job already listed under its label is left as it is: (its record, None)."""
    study = Path(study).resolve()
    with folder_lock(study, command):
        manifest = load(study)
        record = manifest.job(job.label)
        if record is not None and record.state not in RESUBMITTABLE:
            return record, None
        if record is None:
            manifest.jobs.append(_record(job, "planned"))
            save(study, manifest)
        return _submit_one(site, job, study, manifest, data, False)


def _record(job: Job, state: str) -> JobRecord:
    plan, point = job.plan, job.point
    return JobRecord(
        label=job.label,
        gpus=plan.gpus,
        ranks=plan.ranks,
        nodes=plan.nodes,
        walltime_s=plan.walltime_s,
        folder=f"jobs/{job.label}",
        script=f"jobs/{job.label}/job.sh",
        state=state,
        params=dict(point.params),
        args=list(point.args),
        data=point.data,
        fold=point.fold,
        trial=point.trial,
        generation=point.generation,
        repeat=point.repeat,
    )


def _submit_one(
    site: Site,
    job: Job,
    study: Path,
    manifest: StudyManifest,
    data: Path,
    dry_run: bool,
) -> tuple[JobRecord, Any]:
    """Write one job's script and submit it (the caller holds the study's lock)."""
    label, plan = job.label, job.plan
    job_dir = study / "jobs" / label
    old = manifest.job(label)
    if old is not None and old.job_id is not None and job_dir.exists():
        _archive(job_dir)  # a re-submit keeps the earlier attempt's records beside the new ones
    job_dir.mkdir(parents=True, exist_ok=True)
    spec, submitit_dir, script = study_job(
        site, plan, study, manifest.study, job.point.data or data, job.model, job.args, label,
        job.command,
    )  # fmt: skip
    atomic_write(job_dir / "job.sh", script)
    record = _record(job, "dry-run" if dry_run else "planned")
    manifest.jobs = [record if j.label == label else j for j in manifest.jobs]
    save(study, manifest)
    if dry_run:
        return record, None
    try:
        task = CommandTask(spec.rank_args) if job.command else TrainTask(spec.rank_args)
        submitted = make_executor(site, plan, spec, submitit_dir).submit(task)
    except Exception as exc:
        record.state, record.error = "submit-failed", _one_line(exc)
        save(study, manifest)
        raise UserError(
            f"submitting job {label} failed: {record.error}; "
            f"{study}/manifest.json lists what was submitted"
        ) from exc
    record.job_id, record.state, record.submitted_at = (
        str(submitted.job_id),
        "submitted",
        time.time(),
    )
    save(study, manifest)
    return record, submitted


def _archive(job_dir: Path) -> None:
    job_dir.rename(job_dir.with_name(f"{job_dir.name}.old-{int(time.time())}"))


def _one_line(exc: BaseException) -> str:
    stderr = getattr(exc, "stderr", None) or getattr(exc, "output", None)
    text = stderr.decode() if isinstance(stderr, bytes) else (stderr or str(exc))
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return " / ".join(lines[-3:]) if lines else type(exc).__name__
