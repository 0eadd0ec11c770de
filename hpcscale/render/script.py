"""Render a job script from a site, a plan and a job spec through the Jinja templates.

Safety rule: every ``{{ expression }}`` in a template is shell-quoted on output (the environment's
``finalize`` hook), so a template cannot forget to quote. Values written into scheduler directives
are also validated to be one token (a newline there would end the comment and start a command).
The only expansion a descriptor value gets is ``${NAME}`` (braces required): it is left to the job's
shell inside double quotes, so ``data_dir: ${SCRATCH}/lartpc`` works; ``$(...)``, backticks and
``$NAME`` stay literal.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import jinja2

from hpcscale import __version__, workloads
from hpcscale.containers.runtime import recorded_digest
from hpcscale.containers.runtimes.registry import RUNTIMES
from hpcscale.envref import ENV_REF
from hpcscale.errors import RenderError
from hpcscale.launchers.registry import LAUNCHERS
from hpcscale.plan import CHECKPOINT_LEAD_S, JobPlan
from hpcscale.resources import resource_dir
from hpcscale.sites.models import Site

_DIRECTIVE_VALUE = re.compile(r"^[^\s\x00-\x1f\x7f]+$")


class Raw(str):
    """Text already safe for the shell (quoted or validated); ``finalize`` leaves it alone."""


def shell_quote(value: object) -> str:
    """Quote ``value`` as one shell word, leaving only ``${NAME}`` references to expand."""
    text = str(value)
    parts: list[str] = []
    pos = 0
    for m in ENV_REF.finditer(text):
        if m.start() > pos:
            parts.append(shlex.quote(text[pos : m.start()]))
        parts.append(f'"${{{m.group(1)}}}"')
        pos = m.end()
    if pos < len(text) or not parts:
        parts.append(shlex.quote(text[pos:]))
    return "".join(parts)


def _finalize(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Raw):
        return value
    if isinstance(value, bool):
        raise RenderError("a template printed a boolean; use it in {% if %} instead")
    return shell_quote(value)


def _args(values: Iterable[object]) -> Raw:
    return Raw(" ".join(shell_quote(v) for v in values))


def comment_text(value: object) -> Raw:
    """Text for a ``#`` comment line: control characters (a newline would end the comment and
    start a command) are written as escapes."""
    text = str(value)
    return Raw("".join(c if c.isprintable() else repr(c)[1:-1] for c in text))


def _directive(value: object, what: str = "value") -> Raw:
    """A value for a scheduler directive line, written as is: the scheduler reads that line,
    not the shell (which sees a comment), and shell quotes would reach the scheduler literally.
    One token; descriptor values are further restricted by the model (``Token``)."""
    text = str(value)
    if not _DIRECTIVE_VALUE.match(text):
        raise RenderError(
            f"{what} {text!r} cannot go into a scheduler directive: no whitespace or control "
            "characters allowed there"
        )
    return Raw(text)


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resource_dir("templates"))),
        finalize=_finalize,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["args"] = _args
    env.filters["raw"] = Raw
    env.filters["directive"] = _directive
    env.filters["comment"] = comment_text
    env.filters["shlex"] = lambda values: shlex.join(str(v) for v in values)
    return env


@dataclass(frozen=True)
class JobSpec:
    """The per-job part of a script that is neither site nor plan: names, paths, command."""

    name: str
    command: list[str]
    output: str | None = None  # None: the scheduler's default pattern (hpcscale-%j.out on Slurm)
    error: str | None = None
    signal_s: int = CHECKPOINT_LEAD_S
    env: Mapping[str, str] = field(default_factory=dict)
    launcher_args: list[str] = field(default_factory=list)  # e.g. submitit's per-task logs
    # The training core's arguments when ``command`` is submitit's (the core runs from its
    # pickle): shown in a comment, so the script says what every rank trains.
    rank_args: list[str] = field(default_factory=list)
    rank_what: str = "the training core"  # what the ranks run, for that comment


def train_command(
    site: Site,
    plan: JobPlan,
    *,
    data: str,
    out: str,
    model: str | None = None,
    python: str = "python",
    extra: Iterable[str] = (),
) -> list[str]:
    """The argv every rank runs: ``python -u -m hpcscale.train`` and ``train_args``."""
    args = train_args(site, plan, data=data, out=out, model=model, extra=extra)
    return [python, "-u", "-m", "hpcscale.train", *args]


def train_args(
    site: Site,
    plan: JobPlan,
    *,
    data: str,
    out: str,
    model: str | None = None,
    extra: Iterable[str] = (),
) -> list[str]:
    """The training core's arguments for one job: ``model`` (default: the site's) with the
    site's training defaults, then ``extra``. An option given in ``extra`` replaces the site's
    default for it (each option reaches the rank once). The site's defaults apply when the
    model trains on the site's kind of data; another model (``cms-jets`` on a LArTPC site) runs
    with its own defaults."""
    w = site.training
    extra = list(extra)
    given = {arg.split("=", 1)[0] for arg in extra if arg.startswith("--")}
    model = model or w.model
    defaults = [("--model", model)]
    own: list[str] = []
    if workloads.data_kind(model) == workloads.data_kind(w.model):
        defaults += [
            ("--batch", str(w.batch)), ("--epochs", f"{w.epochs:g}"),
            ("--target-loss", f"{w.target_loss:g}"),
        ]  # fmt: skip
        own = list(w.options)
    defaults.append(("--max-requeues", str(site.limits.requeues)))
    return [
        "--site", site.name, "--engine", site.engine, "--data", data, "--out", out,
        *[part for flag, value in defaults if flag not in given for part in (flag, value)],
        "--time-limit", str(plan.walltime_s),
        *own, *extra,
    ]  # fmt: skip


def job_environment(site: Site, plan: JobPlan, extra: Mapping[str, str]) -> dict[str, str]:
    """Variables exported before launch: computed ones, then the site's, then the job's."""
    env = {
        "OMP_NUM_THREADS": str(plan.cpus_per_rank),
        "HPCSCALE_SITE": site.name,
        # For launchers that tell a rank its number but not the world size (aprun).
        "HPCSCALE_WORLD_SIZE": str(plan.ranks),
        "HPCSCALE_RANKS_PER_NODE": str(plan.ranks_per_node),
        "HPCSCALE_SITE_DIGEST": site.digest(),
    }
    if site.container.enabled and site.container.image:
        env["HPCSCALE_IMAGE"] = site.container.image  # the core records its digest
        # read here, where the image was built: a rank inside the image cannot see the file
        digest = recorded_digest(site.container.image)
        if digest:
            env["HPCSCALE_IMAGE_DIGEST"] = digest
    env.update(site.env)
    env.update(extra)
    for name in env:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise RenderError(f"environment variable name {name!r} is not a valid shell name")
    return env


def render_script(site: Site, plan: JobPlan, job: JobSpec, sched: Mapping[str, Any]) -> str:
    """The job script text for one job from the site's scheduler template; ``sched``: the values
    its header needs from the scheduler's backend (``Backend.context``). The backends call this
    (``hpcscale.schedulers.render_script`` looks the backend up); render sits below them and
    looks up none."""
    if not job.command:
        raise RenderError("the rank command is empty")
    return _render(f"schedulers/{site.scheduler.backend}.j2", site, plan, job, sched)


def render_environment(site: Site, plan: JobPlan, job: JobSpec) -> list[str]:
    """Just the module loads and exports of the job script, one shell line each."""
    return _render("env.sh.j2", site, plan, job, {}).splitlines()


def _render(name: str, site: Site, plan: JobPlan, job: JobSpec, sched: Mapping[str, Any]) -> str:
    template = environment().get_template(name)
    try:
        return template.render(
            site=site,
            plan=plan,
            job=job,
            env=job_environment(site, plan, job.env),
            version=__version__,
            backend=site.scheduler.backend,  # the registry name (``BACKEND.name``)
            sched=sched,
            launcher=LAUNCHERS.get(site.launcher.kind),
            runtime=RUNTIMES.get(site.container.runtime),
        )
    except jinja2.TemplateError as exc:  # a template bug, not a user error
        raise RuntimeError(f"template error: {exc}") from exc
