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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hpcscale.errors import UserError
from hpcscale.fsutil import atomic_write
from hpcscale.plan import JobPlan, Request, plan_job
from hpcscale.render.script import JobSpec, render_script, train_command
from hpcscale.sites.models import Site


def cache_root() -> Path:
    return Path(os.environ.get("HPCSCALE_CACHE") or Path.home() / ".cache" / "hpcscale")


def default_data(
    site: Site, progress: Callable[[int, int], None] | None = None, model: str | None = None
) -> Path:
    """The default data set for ``model`` (default: the site's) on this site, generated on first
    use and cached: the site's training block describes it when the model trains on the site's
    kind of data, else the model's kind's default size."""
    from hpcscale import workloads

    w = site.training
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


def local_script(site: Site, plan: JobPlan, data: Path, out: Path, train_args: list[str]) -> str:
    """The script `hpcscale run` runs: the site's template, ranks started by its launcher
    (torch.distributed.run), each running the training core."""
    command = train_command(
        site,
        plan,
        data=str(data),
        out=str(out),
        python=sys.executable,
        extra=["--job", out.name, *train_args],
    )
    return render_script(site, plan, JobSpec(name=out.name, command=command))


def run_local(
    site: Site, ranks: int, data: Path, out: Path, walltime: str | None, train_args: list[str]
) -> tuple[int, dict[str, Any]]:
    """Render the local job for ``ranks`` ranks into ``out``, run it (its output to
    ``out/job.log``), and summarise it."""
    from hpcscale.train.records import summarize

    plan = plan_job(site, Request(ranks=ranks, walltime=walltime))
    out, data = Path(out).absolute(), Path(data).absolute()  # the script runs with cwd=out
    if out.exists() and any(out.iterdir()):
        raise UserError(
            f"{out}: folder exists and is not empty; records are append-only, so choose a new --out"
        )
    out.mkdir(parents=True, exist_ok=True)
    script = out / "job.sh"
    atomic_write(script, local_script(site, plan, data, out, train_args), mode=0o755)
    start = time.time()
    # The launcher's and the ranks' own output (torchrun's failure report is a page long) goes to
    # job.log; the summary says what failed, in a line per rank.
    with open(out / "job.log", "wb") as log:
        rc = subprocess.run(
            ["bash", str(script)], cwd=out, stdout=log, stderr=subprocess.STDOUT
        ).returncode
    summary = summarize(out, plan.ranks)
    summary["wall_s"] = time.time() - start
    return rc, summary
