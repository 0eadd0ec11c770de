"""A scaling study: one job per size, submitted through submitit, kept in one folder.

STUDY/manifest.json          site, descriptor digest, request, every job (written atomically
                             after each change, so an interrupted sweep leaves it consistent)
STUDY/jobs/<label>/job.sh    the script as submitted (label: 8g, 4r, ...)
STUDY/jobs/<label>/submitit/ submitit's pickles and per-task logs
STUDY/jobs/<label>/          the training core's records, summary.json, mlperf.log
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from hpcscale import __version__
from hpcscale.command.config import parse as parse_command
from hpcscale.command.jobs import command_argv
from hpcscale.command.task import CommandTask
from hpcscale.data.manifest import is_data_manifest
from hpcscale.errors import UserError
from hpcscale.fsutil import atomic_write, atomic_write_json, folder_lock
from hpcscale.messages import describe
from hpcscale.plan import JobPlan, Request, check_model_parallel
from hpcscale.render.script import JobSpec, train_args
from hpcscale.schedulers.jobs import job_script, make_executor, plan_job
from hpcscale.schedulers.jobs import job_state as scheduler_state
from hpcscale.sites.models import Site
from hpcscale.train.config import parse
from hpcscale.train.engine import mw_shape
from hpcscale.train.entry import TrainTask
from hpcscale.train.records import summarize

DONE_STATES = {  # a job in one of these has ended (see ``settled_summary``)
    "completed", "failed", "cancelled", "terminated", "timeout", "out of memory", "node failure",
}  # fmt: skip


class JobRecord(BaseModel):
    label: str
    gpus: int
    ranks: int
    nodes: int
    walltime_s: int
    folder: str  # relative to the study
    script: str
    job_id: str | None = None
    state: str = "planned"  # planned, dry-run, submitted, submit-failed, completed, failed, ...
    submitted_at: float | None = None
    error: str | None = None
    # What this job is within a study that varies more than the size (see ``Point``).
    params: dict[str, Any] = Field(default_factory=dict)
    args: list[str] = Field(default_factory=list)
    data: str | None = None
    fold: int | None = None
    trial: int | None = None
    generation: int | None = None
    value: float | None = None  # an optimisation's figure of merit for this trial
    repeat: int | None = None  # which of a study's --repeats (1-based; None: not repeated)


class StudyManifest(BaseModel):
    """A study folder's ``manifest.json``: the site, what was asked and every job's record."""

    study: str
    site: str
    site_digest: str
    scheduler: str
    created: float
    hpcscale: str = __version__
    request: dict[str, Any] = Field(default_factory=dict)
    kind: str = "scaling"  # scaling, sweep, kfold, optimize (the study spec's kind)
    jobs: list[JobRecord] = Field(default_factory=list)

    def job(self, label: str) -> JobRecord | None:
        return next((j for j in self.jobs if j.label == label), None)


def is_job_folder(folder: Path) -> bool:
    """A single job's folder (from `hpcscale run`, or one of a study's jobs/<label>)."""
    folder = Path(folder)
    return not (folder / "manifest.json").exists() and (
        (folder / "summary.json").exists() or (folder / "rank-0.jsonl").exists()
    )


def load(study: Path) -> StudyManifest:
    """A study's manifest; for a single job's folder, a one-job manifest made from its files."""
    path = Path(study) / "manifest.json"
    if is_job_folder(study):
        return job_manifest(Path(study))
    try:
        return StudyManifest.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        where = f"{study}: no such folder" if not Path(study).is_dir() else f"{path}: no such file"
        raise UserError(
            f"{where}; give a study folder (from `hpcscale submit`) or a job folder "
            "(from `hpcscale run`, with summary.json)"
        ) from None
    except ValidationError as exc:
        if is_data_manifest(path):
            raise UserError(
                f"{study} is a data set (from `hpcscale data generate`), not a study; give "
                "a study folder (from `hpcscale submit`) or a job folder (from `hpcscale run`)"
            ) from None
        raise UserError(
            f"{path}: not a valid study manifest ({describe(exc, StudyManifest)})"
        ) from None


def job_manifest(folder: Path) -> StudyManifest:
    """A one-job manifest for a job folder, from its summary (or its first record)."""
    summary: dict[str, Any] = {}
    if (folder / "summary.json").exists():
        try:
            summary = json.loads((folder / "summary.json").read_text())
        except json.JSONDecodeError as exc:
            raise UserError(f"{folder / 'summary.json'}: not valid JSON ({exc.msg})") from None
    config = summary.get("config") or {}
    ranks = int(summary.get("world_size") or len(list(folder.glob("rank-*.jsonl"))) or 1)
    limit = config.get("time_limit")
    record = JobRecord(
        label=summary.get("job") or folder.name,
        gpus=0,
        ranks=ranks,
        nodes=1,
        walltime_s=int(limit) if limit else 0,
        folder=".",
        script="job.sh",
        state=summary.get("status", "unknown"),
    )
    site = summary.get("site") or config.get("site") or "local"
    return StudyManifest(
        study=summary.get("study") or folder.name,
        site=site,
        site_digest=(summary.get("provenance") or {}).get("site_digest") or "-",
        scheduler="job",
        created=folder.stat().st_mtime,
        jobs=[record],
    )


def save(study: Path, manifest: StudyManifest) -> None:
    if manifest.scheduler == "job":
        return  # a job folder has no manifest to keep
    atomic_write(Path(study) / "manifest.json", manifest.model_dump_json(indent=2) + "\n")


def open_study(
    study: Path, site: Site, request: dict[str, Any], kind: str = "scaling"
) -> StudyManifest:
    """The study's manifest, new or existing (which must be for the same site)."""
    if (Path(study) / "manifest.json").exists():
        manifest = load(study)
        if manifest.site != site.name:
            raise UserError(
                f"{study} is a study of site {manifest.site}, not {site.name}; "
                "choose another --study folder"
            )
        return manifest
    return StudyManifest(
        study=uuid.uuid4().hex[:12],
        site=site.name,
        site_digest=site.digest(),
        scheduler=site.scheduler.backend,
        created=time.time(),
        request=request,
        kind=kind,
    )


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


def create_study(study: Path, site: Site, request: dict[str, Any], kind: str) -> StudyManifest:
    """The study's manifest, written now if new (a study whose jobs come later: a search)."""
    with folder_lock(study, f"hpcscale {kind}"):
        manifest = open_study(Path(study).resolve(), site, request, kind)
        save(study, manifest)
        return manifest


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


# How a job ended, in the scheduler's words (first word of its state, lower case) → hpcscale's.
ENDINGS = {
    "cancelled": "cancelled",
    "timeout": "timeout",
    "deadline": "timeout",
    "out_of_memory": "out of memory",
    "node_fail": "node failure",
    "boot_fail": "node failure",
    "failed": "failed",
    "completed": "completed",
}
STILL_ACTIVE = {"pending", "running", "requeued", "configuring", "completing", "suspended",
                "resizing", "submitted", "unknown"}  # fmt: skip


def settled_summary(
    study: Path, manifest: StudyManifest, record: JobRecord
) -> dict[str, Any] | None:
    """The job's summary, made truthful with its scheduler's word on how it ended.

    A summary that says "failed" or "terminated" is told apart by the scheduler's final state:
    cancelled, timeout, out of memory, node failure (``scheduler_state`` keeps its own words).
    A job that ended without a readable summary (every rank killed before rank 0 could write
    it) gets one made from its records and rank statuses. Both are written back to
    ``summary.json``. None while the job has not ended, or was never submitted.
    """
    folder = Path(study) / record.folder
    summary = _read_summary(folder / "summary.json")
    if summary is not None and summary.get("status") not in ("failed", "terminated"):
        return summary
    if summary is not None and summary["status"] == "terminated" and record.state == "cancelled":
        summary.update(status="cancelled", cancelled_by="hpcscale cancel")  # we stopped it
        atomic_write_json(folder / "summary.json", summary)
        return summary
    if record.job_id is None or manifest.scheduler == "job":
        return summary
    state = scheduler_state(manifest.scheduler, folder / "submitit", record.job_id)
    if summary is None:
        if state.split(" ")[0] in STILL_ACTIVE or not any(folder.glob("rank-*.jsonl")):
            return None  # running, or no rank ever started: the scheduler's state says it all
        damaged = (folder / "summary.json").exists()  # there, but torn or not JSON
        summary = summarize(folder, record.ranks, write=False)
        summary["written_by"] = "collect: the job ended without a summary"
        if damaged:  # said by status, collect and the report: a damaged file is never hidden
            summary["rebuilt"] = DAMAGED_NOTE
    ending = ENDINGS.get(state.split(" ")[0])
    if ending is None and "written_by" not in summary:
        return summary  # the scheduler cannot tell (the local one): the ranks' word stands
    if ending and ending not in ("completed", "failed"):
        summary["status"] = ending
    if summary.get("scheduler_state") != state:
        summary["scheduler_state"] = state
        atomic_write_json(folder / "summary.json", summary)
    return summary


DAMAGED_NOTE = (
    "summary.json was damaged (cut short or not JSON); rebuilt from the ranks' records, which "
    "are complete"
)


def rebuilt_note(job_dir: Path) -> str | None:
    """What a job's summary says about its own repair (``DAMAGED_NOTE``), or None."""
    summary = _read_summary(Path(job_dir) / "summary.json") or {}
    note = summary.get("rebuilt")
    return note if isinstance(note, str) else None


def _read_summary(path: Path) -> dict[str, Any] | None:
    try:
        summary = json.loads(path.read_bytes())
    except (OSError, ValueError):  # none yet, or torn: as if none
        return None
    return summary if isinstance(summary, dict) else None


def job_state(study: Path, manifest: StudyManifest, record: JobRecord) -> str:
    """The job's state: its settled summary's status if it has ended, else the scheduler's."""
    summary = settled_summary(study, manifest, record)
    if summary is not None:
        return str(summary.get("status", "unknown"))
    if record.job_id is None or manifest.scheduler == "job":
        return record.state
    folder = Path(study) / record.folder / "submitit"
    return scheduler_state(manifest.scheduler, folder, record.job_id)


def point_fields(record: JobRecord) -> dict[str, Any]:
    """What sets a job apart in a study beyond its size (empty for a scaling study's)."""
    fields = {"params": record.params, "fold": record.fold, "trial": record.trial,
              "generation": record.generation, "value": record.value,
              "repeat": record.repeat}  # fmt: skip
    return {k: v for k, v in fields.items() if v not in (None, {})}


def collect(study: Path) -> list[dict[str, Any]]:
    """Every job's summary; a job without one says why. Keeps going past broken jobs."""
    manifest = load(study)
    rows = []
    for record in manifest.jobs:
        row: dict[str, Any] = {
            "label": record.label,
            "gpus": record.gpus,
            "ranks": record.ranks,
            "nodes": record.nodes,
            "job_id": record.job_id,
            "folder": record.folder,
            **point_fields(record),
        }
        summary = settled_summary(study, manifest, record)
        if summary is None:
            state = job_state(study, manifest, record)
            row.update(
                status="missing",
                reason=f"no summary.json (job state: {state}; logs in {record.folder}/submitit)",
            )
        else:
            row.update(summary)
            if summary.get("status") != "completed" and summary.get("failure"):
                f = summary["failure"]
                where = f" on {f['host']}" if f.get("host") else ""
                row["reason"] = f"rank {f['rank']}{where}: {f['reason']}"
            if summary.get("scheduler_state") and summary.get("status") != "completed":
                row["reason"] = (
                    f"{row.get('reason') or ''} (scheduler: {summary['scheduler_state']})"
                )
        rows.append(row)
    return rows
