"""The optimisation loop: propose points, submit each as a job of the study (a trial), wait,
read each finished trial's figure of merit from its summary, propose more, until the budget of
trials has run.

Its state is the study folder: every trial is a job record in the manifest with its options
(``params``), its generation (evolution) and, once it has ended, its figure of merit
(``value``). Every change is a transaction under the study's lock. A search that is stopped
(Ctrl-C, a lost login session, ``kill``) leaves its running trials running; run the same command
again and it picks up the finished ones, waits for the running ones and proposes only what the
budget still lacks: no finished trial is run again. ``hpcscale cancel`` stops the trials and the
search with them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hpcscale.errors import UserError
from hpcscale.fmt import params_text
from hpcscale.fsutil import folder_lock
from hpcscale.optimize import evolution
from hpcscale.optimize.gp import propose as gp_propose
from hpcscale.optimize.space import decode, encode
from hpcscale.sites.models import Site
from hpcscale.spec import Optimize, StudySpec, Value, point_args
from hpcscale.study import (
    DONE_STATES,
    STILL_ACTIVE,
    JobRecord,
    job_state,
    load,
    save,
    settled_summary,
)
from hpcscale.submission import Job, Point, resolve_job, submit_point

COMMAND = "hpcscale optimize"


def ended(state: str) -> bool:
    """Whether a trial in ``state`` has ended (a summary's status, or the scheduler's word)."""
    return state in DONE_STATES or state.split(" ")[0] not in STILL_ACTIVE | {"planned"}


def figure(summary: dict[str, Any], objective: str, label: str) -> float | None:
    """The figure of merit in a completed trial's summary (``a.b``: a nested key)."""
    value: Any = summary
    for part in objective.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value is None and summary.get("status") == "completed":
        numbers = sorted(k for k, v in summary.items() if isinstance(v, int | float))
        raise UserError(
            f"optimize.objective {objective!r}: trial {label}'s summary has no such figure; "
            f"its figures: {', '.join(numbers)}"
        )
    return float(value) if isinstance(value, int | float) else None


def refresh(study: Path, objective: str) -> list[JobRecord]:
    """The study's trials, each with its current state and, once completed, its figure (one
    transaction: the manifest is read, brought up to date and written back)."""
    with folder_lock(study, COMMAND):
        manifest = load(study)
        for record in manifest.jobs:
            if record.trial is None or record.job_id is None or ended(record.state):
                continue
            record.state = job_state(study, manifest, record)
            if record.state == "completed":
                summary = settled_summary(study, manifest, record) or {}
                record.value = figure(summary, objective, record.label)
        save(study, manifest)
    return [r for r in manifest.jobs if r.trial is not None]


def propose(opt: Optimize, trials: list[JobRecord], count: int) -> list[tuple[dict, int | None]]:
    """Up to ``count`` new points, (options, generation); fewer (or none) when the method must
    wait for running trials (evolution: a generation breeds only from finished ones)."""
    finished = {t.label for t in trials if ended(t.state)}
    if opt.method == "gp":
        return gp_propose(opt, trials, finished, count)
    return propose_evolution(opt, trials, count, finished)


def propose_evolution(
    opt: Optimize, trials: list[JobRecord], count: int, finished: set[str]
) -> list[tuple[dict, int | None]]:
    """The next points of the current generation, or of the next one once the current one has
    ended. A generation is made again from the same history on resume, so the points proposed
    are the ones it would have proposed before (those already listed are skipped)."""
    size = opt.generation_size()
    gen = max((t.generation or 0 for t in trials), default=0)
    listed = [t for t in trials if (t.generation or 0) == gen]
    if trials and len(listed) >= size:
        if any(t.label not in finished for t in listed):
            return []  # the generation is still running
        gen, listed = gen + 1, []
    history = [(encode(opt.space, t.params), t.value) for t in trials if (t.generation or 0) < gen]
    points = evolution.generation(
        history, gen, size, len(opt.space), population=size, mutation=opt.mutation,
        maximize=opt.direction == "maximize", seed=opt.seed,
    )  # fmt: skip
    return [(decode(opt.space, x), gen) for x in points[len(listed) : len(listed) + count]]


def best(trials: list[JobRecord], maximize: bool) -> JobRecord | None:
    scored = [t for t in trials if t.value is not None]
    if not scored:
        return None
    return max(scored, key=lambda t: t.value if maximize else -t.value)  # type: ignore[operator]


def run(
    spec: StudySpec,
    site: Site,
    study: Path,
    data: str,
    shape: Job,
    say: Callable[[str], None],
    poll_s: float = 2.0,
) -> list[JobRecord]:
    """Run (or resume) the search until ``spec.optimize.trials`` trials have ended; one line
    through ``say`` per trial submitted and per trial finished; every trial is a job of
    ``shape`` (its size, model and the study's options) with its own options. Returns the
    trials."""
    opt = spec.optimize
    assert opt is not None
    trials = refresh(study, opt.objective)
    told: set[str] = set()  # the trials whose line has been said (on resume: all, again)
    if trials:
        done = sum(ended(t.state) for t in trials)
        say(f"resuming: {done} of {opt.trials} trials finished, {len(trials) - done} running")
    while True:
        if any(t.state == "cancelled" and not t.value for t in trials if t.label not in told):
            say("the search was cancelled (`hpcscale cancel`); its finished trials stay listed")
            break
        for t in trials:
            if t.label not in told and ended(t.state):
                told.add(t.label)
                say(_finished_line(t, [x for x in trials if x.label in told], opt, len(told)))
        running = [t for t in trials if not ended(t.state)]
        if len(trials) >= opt.trials and not running:
            break
        free = min(opt.parallel - len(running), opt.trials - len(trials))
        new = propose(opt, trials, free) if free > 0 else []
        for params, generation in new:
            trials.append(_submit(site, study, data, shape, params, generation, trials))
            say(f"  {trials[-1].label}: submitted as job {trials[-1].job_id} "
                f"({params_text(params)})")  # fmt: skip
        if not new:
            time.sleep(poll_s)
        trials = refresh(study, opt.objective)
    return trials


def _submit(
    site: Site,
    study: Path,
    data: str,
    shape: Job,
    params: dict[str, Value],
    generation: int | None,
    trials: list[JobRecord],
) -> JobRecord:
    n = len(trials)
    point = Point(shape.point.request, f"t{n:03d}", tuple(point_args(params)), params=params,
                  trial=n, generation=generation)  # fmt: skip
    job = resolve_job(site, point, shape.model, shape.args)
    record, _ = submit_point(site, job, study, Path(data), COMMAND)
    return record


def _finished_line(t: JobRecord, told: list[JobRecord], opt: Optimize, done: int) -> str:
    """One line for a finished trial: its options, its figure, the best so far."""
    top = best(told, opt.direction == "maximize")
    value = f"{opt.objective} {t.value:.4g}" if t.value is not None else f"{t.state}, no figure"
    lead = f"; best {top.label} {top.value:.4g}" if top is not None else ""
    gen = f" (generation {t.generation})" if opt.method == "evolution" else ""
    return f"trial {t.label}{gen} {params_text(t.params)}: {value}{lead} [{done}/{opt.trials}]"
