"""``hpcscale run``: N ranks of the training core on this machine, through the `local` site's
own job script (the same template a cluster job uses), then the job's summary.

Without ``--data``, the site's default synthetic data set is generated once into the cache
(``HPCSCALE_CACHE``, default ``~/.cache/hpcscale``) and reused.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpcscale import workloads
from hpcscale.command.jobs import command_argv, rank_command
from hpcscale.command.summary import summarize_command
from hpcscale.errors import UserError
from hpcscale.fsutil import atomic_write, cache_root
from hpcscale.render.script import JobSpec, train_command
from hpcscale.schedulers.jobs import render_script
from hpcscale.sites.models import Site
from hpcscale.train.records import summarize

if TYPE_CHECKING:
    from hpcscale.submission import Job


def default_data(
    site: Site, progress: Callable[[int, int], None] | None = None, model: str | None = None
) -> Path:
    """The default data set for ``model`` (default: the site's) on this site, generated on first
    use and cached: the site's training block describes it when the model trains on the site's
    kind of data, else the model's kind's default size."""
    w = site.training
    if not workloads.spec(model or w.model).generator:  # it stages its own data
        folder = cache_root() / "no-data"
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    kind = workloads.data_kind(model or w.model)
    if kind == workloads.data_kind(w.model):
        events = w.events
    else:
        events = workloads.DEFAULT_EVENTS.get(kind, w.events)
    name = f"lartpc-{w.resolution}px" if kind == "lartpc" else kind
    folder = cache_root() / f"{name}-{events}ev-seed0"
    if not (folder / "manifest.json").exists():
        done = [0]

        def tick(n: int) -> None:
            done[0] += n
            if progress:
                progress(done[0], events)

        generate = workloads.generator(model or w.model)
        generate(folder, events, resolution=w.resolution, seed=0, force=True, progress=tick)
    return folder


def local_script(site: Site, job: Job, data: Path, out: Path) -> str:
    """The script `hpcscale run` runs: the site's template, ranks started by its launcher
    (torch.distributed.run), each running the training core."""
    if job.command:  # a training command, measured on every rank
        argv = command_argv(site, job.plan, out=str(out), command=job.command, job=out.name,
                            extra=job.args)  # fmt: skip
        command = rank_command(sys.executable, argv)
    else:
        command = train_command(
            site, job.plan, data=str(data), out=str(out), model=job.model,
            python=sys.executable, extra=["--job", out.name, *job.args],
        )  # fmt: skip
    return render_script(site, job.plan, JobSpec(name=out.name, command=command))


def absolute_pythonpath(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment with PYTHONPATH's relative entries made absolute: the job runs in its
    own folder, where ``PYTHONPATH=plugins`` typed in the user's folder would find nothing."""
    env = dict(environ)
    if env.get("PYTHONPATH"):
        parts = env["PYTHONPATH"].split(os.pathsep)
        env["PYTHONPATH"] = os.pathsep.join(str(Path(p).absolute()) if p else p for p in parts)
    return env


def run_local(site: Site, job: Job, data: Path, out: Path) -> tuple[int, dict[str, Any]]:
    """Render the local job ``job`` (``submission.resolve_job``'s) into ``out``, run it (its output
    to ``out/job.log``), and summarise it."""
    out, data = Path(out).absolute(), Path(data).absolute()  # the script runs with cwd=out
    if out.exists() and any(out.iterdir()):
        raise UserError(
            f"{out}: folder exists and is not empty; records are append-only, so choose a new --out"
        )
    out.mkdir(parents=True, exist_ok=True)
    script = out / "job.sh"
    atomic_write(script, local_script(site, job, data, out), mode=0o755)
    start = time.time()
    # The launcher's and the ranks' own output (torchrun's failure report is a page long) goes to
    # job.log; the summary says what failed, in a line per rank.
    with open(out / "job.log", "wb") as log:
        rc = subprocess.run(
            ["bash", str(script)], cwd=out, stdout=log, stderr=subprocess.STDOUT,
            env=absolute_pythonpath(os.environ),
        ).returncode  # fmt: skip
    if job.command:
        summary = summarize_command(out, job.plan.ranks)
    else:
        summary = summarize(out, job.plan.ranks)
    summary["wall_s"] = time.time() - start
    return rc, summary
