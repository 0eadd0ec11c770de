"""Checks made before any rank starts: what the data, the site and this machine can tell us.

``check_data`` parses the rank's options with the training core's own parser and asks the
selected workload (``hpcscale.workloads``) to check the data. Everything else here needs only
the site and the machine. Each check raises ``UserError`` (one line, exit 2) or returns notes
worth printing.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hpcscale.errors import UserError
from hpcscale.plan import JobPlan
from hpcscale.render.script import train_command
from hpcscale.sites.models import Site


def job_args(site: Site, plan: JobPlan, extra: list[str]) -> list[str]:
    """The training core's arguments for one job: the site's workload, then the user's."""
    return train_command(site, plan, data="-", out="-", extra=extra)[4:]


def check_train_args(train_args: list[str]) -> tuple[Any, Any]:
    """The training core's and the workload's options, parsed as every rank will parse them: an
    unknown option or a bad value is refused here (one line), not in every rank after the job
    starts. Returns (core config, workload config)."""
    from hpcscale.train.config import parse

    return parse(["--data", "-", "--out", "-", *train_args])


def check_data(data_folder: Path, ranks: int, train_args: list[str]) -> list[str]:
    """Refuse a data set the job cannot train on; return notes (e.g. TTL out of reach).

    Parses the rank's options as the rank will (unknown or bad options fail here, not in every
    rank), then asks the selected workload to check the data (layout, model against resolution,
    a minibatch for every rank)."""
    from hpcscale import workloads

    core, config = check_train_args(train_args)
    spec = workloads.get(core.model)
    batch = core.batch or spec.default_batch
    samples = spec.check(config, Path(data_folder), ranks, batch, core.max_events)
    if samples is None:
        return []
    steps = int(samples // ranks // batch * core.epochs)
    if steps < core.ttl_window:
        return [
            f"note: {steps} steps ({samples} {spec.sample_unit} / {ranks} rank{_s(ranks)} / "
            f"minibatch {batch} × {core.epochs:g} epochs) are fewer than --ttl-window "
            f"{core.ttl_window}: the smoothed loss is never formed, so TTL will not be set; use "
            "more data or --epochs, or a smaller --ttl-window"
        ]
    return []


def check_scheduler(site: Site) -> None:
    """The site's submit command must be on PATH (before any slow work such as data sets)."""
    from hpcscale.schedulers.registry import for_site

    backend = for_site(site)
    command = backend.submit_command
    if command and shutil.which(command) is None:
        raise UserError(
            f"site {site.name} submits with {backend.label}'s `{command}`, which is "
            "not on PATH on this machine; run on the site's login node, or add --dry-run to "
            "write the job scripts without submitting"
        )


def check_engine(site: Site) -> None:
    """A job that trains on this machine (scheduler local, no container) with the Horovod
    engine needs Horovod here; refuse it before any rank starts, naming the build script.
    (Elsewhere the compute nodes' or the image's Python is what counts: not checked here.)"""
    import importlib.util

    if site.engine != "horovod" or site.scheduler.kind != "local" or site.container.enabled:
        return
    if importlib.util.find_spec("horovod") is None:
        raise UserError(
            f"site {site.name} trains with engine horovod, which is not installed in this "
            "Python; build and install it with `bash scripts/build-horovod.sh` (the README's "
            "'Horovod'), or use engine torch"
        )


def check_container(site: Site) -> None:
    """An enabled container needs its runtime's command on PATH (where jobs are submitted), a
    scheduler whose job script wraps the ranks, and, where the image is a local path, the image."""
    from hpcscale.containers.runtime import command

    container = site.container
    if not container.enabled or container.runtime == "none":
        return
    exe = command(container.runtime) or container.runtime
    if shutil.which(exe) is None:
        raise UserError(
            f"site {site.name} runs its ranks in {container.runtime}, whose {exe} is not on PATH "
            "on this machine; use --no-container, or --dry-run to write the job scripts only"
        )
    if site.scheduler.kind == "local":
        raise UserError(
            f"site {site.name}: the local scheduler starts ranks through submitit's local "
            "executor, outside any container; use --no-container, or a Slurm site such as "
            "local-slurm for containerised ranks"
        )
    image = container.image or ""
    if container.runtime == "charliecloud" and "$" not in image and not Path(image).is_dir():
        raise UserError(
            f"container.image {image}: no image directory there; build it with `hpcscale "
            f"container build --site {site.name} --out {image}`"
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
