"""The arguments a job gives every measured rank (``python -m hpcscale.command``): the site's
and the plan's options, the study's own (``--target``, …), then ``--`` and the command."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from hpcscale.plan import JobPlan
from hpcscale.sites.models import Site


def command_argv(
    site: Site,
    plan: JobPlan,
    *,
    out: str,
    command: Sequence[str],
    study: str = "",
    job: str = "",
    extra: Iterable[str] = (),
) -> list[str]:
    """``OPTIONS -- CMD ARGS...`` for one job's ranks."""
    ids = [*(["--study", study] if study else []), *(["--job", job] if job else [])]
    return [
        "--site", site.name, "--engine", site.engine, "--out", out, *ids,
        "--time-limit", str(plan.walltime_s), *extra, "--", *command,
    ]  # fmt: skip


def rank_command(python: str, argv: Sequence[str]) -> list[str]:
    """The argv every rank runs: the measuring wrapper and its arguments."""
    return [python, "-u", "-m", "hpcscale.command", *argv]
