"""Following a study: ``status``, ``cancel``, ``collect`` and ``report``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from hpcscale.cli.session import writable
from hpcscale.fmt import params_text, plural
from hpcscale.fsutil import folder_lock
from hpcscale.schedulers.jobs import cancel as cancel_job
from hpcscale.study import DONE_STATES, is_job_folder, job_state, load, rebuilt_note, save
from hpcscale.tables import print_collect


def status(
    study_dir: Annotated[Path, typer.Argument(help="Study folder, or one job's folder.")],
) -> None:
    """Each job's state (from its summary, else from the scheduler)."""

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
    Console().print(table)
    for record in manifest.jobs:  # a summary rebuilt from the records is never hidden
        note = rebuilt_note(Path(study_dir) / record.folder)
        if note:
            Console().print(f"  {record.label}: {note}", soft_wrap=True)


def _point_text(record: Any) -> str:
    parts = [params_text(record.params)] if record.params else []
    if record.fold is not None:
        parts.append(f"fold {record.fold}")
    if record.value is not None:
        parts.append(f"→ {record.value:.4g}")
    return " ".join(parts) or "-"


def cancel(study_dir: Annotated[Path, typer.Argument(help="Study folder.")]) -> None:
    """Cancel the study's jobs that have not finished, and those not yet submitted (a `submit`
    still running skips them)."""
    load(study_dir)  # a missing or foreign folder is refused before a lock file is made in it
    with folder_lock(study_dir, "hpcscale cancel"):
        manifest = load(study_dir)
        cancelled = 0
        for record in manifest.jobs:
            if record.job_id is None:
                if record.state == "planned":
                    record.state = "cancelled"
                    cancelled += 1
                    Console().print(f"  {record.label}: not submitted yet; it will not be")
                else:
                    Console().print(f"  {record.label}: {record.state}, nothing to cancel")
                continue
            state = job_state(study_dir, manifest, record)
            if state in DONE_STATES:
                Console().print(f"  {record.label}: {state}, nothing to cancel")
                continue
            cancel_job(manifest.scheduler, study_dir / record.folder / "submitit", record.job_id)
            record.state = "cancelled"
            cancelled += 1
            Console().print(f"  {record.label}: cancelled job {record.job_id} (was {state})")
            save(study_dir, manifest)  # after each: an interrupted cancel keeps what it did
        save(study_dir, manifest)
    Console().print(f"{study_dir}: cancelled {plural(cancelled, 'job')} of {len(manifest.jobs)}")


def collect(
    study_dir: Annotated[Path, typer.Argument(help="Study folder, or one job's folder.")],
) -> None:
    """Gather every job's summary: DLT, TTL, epoch rate; say which jobs failed and why."""
    print_collect(study_dir)


def report(
    ctx: typer.Context,
    studies: Annotated[
        list[Path], typer.Argument(help="Study folders (side by side), or job folders.")
    ],
    out_dir: Annotated[
        Path | None, typer.Option("--out", "-o", help="Report folder; default STUDY/report.")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="md or html.")] = "md",
) -> None:
    """Tables, scaling fits with 95 % intervals, plots and results.json for the studies."""
    # numpy and matplotlib: only a report needs them, so `hpcscale --help` stays fast
    from hpcscale.analysis.report import build_report

    folder = out_dir or studies[0] / "report"
    writable(ctx, folder, "--out")
    path = build_report(studies, folder, fmt)
    print(f"wrote {path} (and results.json, PNG figures beside it)")
