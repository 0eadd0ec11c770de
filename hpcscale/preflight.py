"""Checks made before any rank starts: what the data, the site and this machine can tell us.

``check_data`` asks the selected workload (``hpcscale.workloads``) to check the data against a
job's options as its ranks parse them. Everything else here needs only
the site and the machine. Each check raises ``UserError`` (one line, exit 2) or returns notes
worth printing.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hpcscale import workloads
from hpcscale.containers.runtime import command
from hpcscale.errors import UserError
from hpcscale.fmt import plural
from hpcscale.schedulers.registry import for_site
from hpcscale.sites.models import Site
from hpcscale.train.config import CoreConfig


def check_data(data_folder: Path, ranks: int, core: CoreConfig, config: Any) -> list[str]:
    """Refuse a data set the job cannot train on; return notes (e.g. TTL out of reach).

    ``core`` and ``config``: the job's options as its ranks parse them (``submission.resolve_job``);
    the selected workload checks the data (layout, model against resolution, a minibatch for
    every rank)."""
    spec = workloads.get(core.model)
    batch = core.batch or spec.default_batch
    samples = spec.check(config, Path(data_folder), ranks, batch, core.max_events)
    if samples is None:
        return []
    steps = int(samples // ranks // batch * core.epochs)
    if steps < core.ttl_window:
        return [
            f"note: {steps} steps ({samples} {spec.sample_unit} / {plural(ranks, 'rank')} / "
            f"minibatch {batch} × {core.epochs:g} epochs) are fewer than --ttl-window "
            f"{core.ttl_window}: the smoothed loss is never formed, so TTL will not be set; use "
            "more data or --epochs, or a smaller --ttl-window"
        ]
    return []


def check_gpu_options(site: Site, configs: list[Any]) -> None:
    """Refuse a model option that needs a GPU (a field marked ``needs_gpu``, asked for) on a
    site whose nodes have none, before any job is written: the rank would fail at its start."""
    if site.node is None or site.node.gpus is not None:
        return  # a node detected at run time, or one with GPUs
    for config in configs:
        if config is None:  # a command of the user's: no model options
            continue
        for name, info in type(config).model_fields.items():
            extra = info.json_schema_extra
            if isinstance(extra, dict) and extra.get("needs_gpu") and getattr(config, name):
                flag = "--" + name.replace("_", "-")
                raise UserError(
                    f"{flag} needs a GPU; site {site.name}'s nodes have none (leave {flag} out, "
                    "or use a site with GPUs)"
                )


def check_scheduler(site: Site) -> None:
    """The site's submit command must be on PATH (before any slow work such as data sets)."""
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
