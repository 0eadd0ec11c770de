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
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from hpcscale import __version__
from hpcscale.data.manifest import is_data_manifest
from hpcscale.errors import UserError
from hpcscale.fsutil import atomic_write, atomic_write_json, folder_lock
from hpcscale.messages import describe
from hpcscale.schedulers.jobs import job_state as scheduler_state
from hpcscale.sites.models import Site
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


def create_study(study: Path, site: Site, request: dict[str, Any], kind: str) -> StudyManifest:
    """The study's manifest, written now if new (a study whose jobs come later: a search)."""
    with folder_lock(study, f"hpcscale {kind}"):
        manifest = open_study(Path(study).resolve(), site, request, kind)
        save(study, manifest)
        return manifest


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
    if summary is not None and record.state == "cancelled":
        # We stopped it while it ran: its ranks' "terminated" (or "failed", a rank that saw its
        # peer go first) is the cancel; the ranks' own words stay under "failures".
        summary.update(status="cancelled", cancelled_by="hpcscale cancel")
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
