"""Checks made before any rank starts: what the data, the site and this machine can tell us.

``check_data`` knows the model: today it asks ``hpcscale.train.models`` and the training core's
own option parser; at the workloads merge it asks the workload registry instead. Everything
else here needs only the site and the machine. Each check raises ``UserError`` (one line,
exit 2) or returns notes worth printing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from hpcscale.errors import UserError
from hpcscale.plan import JobPlan
from hpcscale.render.script import train_command
from hpcscale.sites.models import Site

# The commands each scheduler's submission needs on PATH (status and cancel use the others).
SCHEDULER_COMMANDS = {"slurm": "sbatch", "lsf": "bsub", "pbs": "qsub"}


def job_args(site: Site, plan: JobPlan, extra: list[str]) -> list[str]:
    """The training core's arguments for one job: the site's workload, then the user's."""
    return train_command(site, plan, data="-", out="-", extra=extra)[4:]


def check_train_args(train_args: list[str]) -> argparse.Namespace:
    """The training core's options, parsed as every rank will: an unknown option or a bad
    value is refused here, not in every rank after the job starts."""
    from hpcscale.train.config import parser

    ap = parser()
    ap.exit_on_error = False
    try:
        args, unknown = ap.parse_known_args(["--data", "-", "--out", "-", *train_args])
    except argparse.ArgumentError as exc:
        raise UserError(f"training option {exc}") from None
    if unknown:
        raise UserError(
            f"unknown option {unknown[0]!r} (neither hpcscale's nor the training core's; "
            "`python -m hpcscale.train --help` lists the core's)"
        )
    return args


def check_data(data_folder: Path, ranks: int, train_args: list[str]) -> list[str]:
    """Refuse a data set the job cannot train on; return notes (e.g. TTL out of reach).

    Checks the folder's layout (manifest, listed shards), the model against the resolution,
    and that every rank gets at least one minibatch of training events."""
    from hpcscale.data.files import read_manifest

    manifest = read_manifest(data_folder)  # DataError names the file and what is wrong
    missing = [f["name"] for f in manifest.files if not (Path(data_folder) / f["name"]).is_file()]
    if missing:
        raise UserError(
            f"{Path(data_folder) / missing[0]}: no such file (listed in manifest.json; "
            f"{len(missing)} of {len(manifest.files)} shards missing)"
        )
    args = check_train_args(train_args)
    _check_model(args.model, manifest.resolution, data_folder)
    events = manifest.count("train")
    if args.max_events is not None:
        events = min(events, args.max_events)
    steps_per_epoch = events // ranks // args.batch
    if steps_per_epoch < 1:
        need = ranks * args.batch
        raise UserError(
            f"{data_folder}: {events} training events over {ranks} rank{_s(ranks)} give fewer than "
            f"one minibatch of {args.batch} per rank; need at least {need} "
            f"(generate more events or use fewer ranks)"
        )
    steps = int(steps_per_epoch * args.epochs)
    if steps < args.ttl_window:
        return [
            f"note: {steps} steps ({events} events / {ranks} rank{_s(ranks)} / minibatch "
            f"{args.batch} × {args.epochs:g} epochs) are fewer than --ttl-window "
            f"{args.ttl_window}: "
            "the smoothed loss is never formed, so TTL will not be set; use more events or "
            "--epochs, or a smaller --ttl-window"
        ]
    return []


def _check_model(model: str, resolution: int, data_folder: Path) -> None:
    from hpcscale.train.models import PRESETS, feature_side

    if model not in PRESETS:
        raise UserError(f"--model {model!r} is unknown; choose one of {', '.join(PRESETS)}")
    if feature_side(resolution) < 1:
        raise UserError(
            f"{data_folder}: events are {resolution}×{resolution}, but {model} needs images of at "
            "least 275×275 (its four poolings shrink the side 400-fold); generate events with "
            "--resolution 275 or more"
        )


def check_scheduler(site: Site) -> None:
    """The site's submit command must be on PATH (before any slow work such as data sets)."""
    command = SCHEDULER_COMMANDS.get(site.scheduler.kind)
    if command and shutil.which(command) is None:
        raise UserError(
            f"site {site.name} submits with {site.scheduler.kind.upper()}'s `{command}`, which is "
            "not on PATH on this machine; run on the site's login node, or add --dry-run to "
            "write the job scripts without submitting"
        )


def check_container(site: Site) -> None:
    """An enabled container needs its runtime's command on PATH (where jobs are submitted)."""
    runtime = site.container.runtime
    if site.container.enabled and runtime != "none" and shutil.which(runtime) is None:
        raise UserError(
            f"site {site.name} runs its ranks in {runtime}, which is not on PATH on this machine; "
            "use --no-container, or --dry-run to write the job scripts only"
        )


def check_writable(folder: Path, what: str) -> None:
    """``folder`` (or its nearest existing parent) must be writable by us."""
    probe = Path(folder).absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"{what} {folder}: {probe} is not a folder")
    try:  # try it: access() says yes to root on read-only mounts and /proc
        fd, name = tempfile.mkstemp(prefix=".hpcscale-probe-", dir=probe)
    except OSError as exc:
        raise UserError(f"{what} {folder}: cannot write in {probe} ({exc.strerror})") from None
    os.close(fd)
    os.unlink(name)


def _s(n: int) -> str:
    return "" if n == 1 else "s"
