"""Bayesian optimisation with a Gaussian-process prior: Optuna's ``GPSampler`` (Matérn 5/2 with
automatic relevance determination, log expected improvement; trials still running are taken
into account, so parallel trials are not proposed on top of each other).

Optuna is asked, never trusted with state: each proposal rebuilds an in-memory Optuna study from
the trials the study folder lists (finished ones with their figure of merit, failed ones as
failed, running ones as running), so what the search knows lives in the manifest alone.
"""

from __future__ import annotations

import warnings
from typing import Any

from hpcscale.spec import Optimize, Value
from hpcscale.study import JobRecord


# optuna (the [optimize] extra; it imports torch and scipy) only in the functions that use it
def distributions(opt: Optimize) -> dict[str, Any]:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    out: dict[str, Any] = {}
    for name, p in opt.space.items():
        if p.choices is not None:
            out[name] = CategoricalDistribution(p.choices)
        elif p.type == "int":
            out[name] = IntDistribution(int(p.low or 0), int(p.high or 0), log=p.log)
        else:
            out[name] = FloatDistribution(float(p.low or 0), float(p.high or 0), log=p.log)
    return out


def propose(opt: Optimize, trials: list[JobRecord], finished: set[str], count: int) -> list:
    """``count`` new points ({option: value}, generation None) given the study's trials;
    ``finished``: the labels of those that have ended (the others are running)."""
    import optuna  # optuna: see distributions
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    dists = distributions(opt)
    sampler = optuna.samplers.GPSampler(
        seed=opt.seed + len(trials), n_startup_trials=max(2, min(opt.parallel, opt.trials))
    )
    study = optuna.create_study(direction=opt.direction, sampler=sampler)
    for t in trials:
        params = {k: _fit(dists[k], v) for k, v in t.params.items() if k in dists}
        if t.label not in finished:
            study.enqueue_trial(params)
            study.ask(dists)  # running: the sampler sees it as pending
        elif t.value is not None:
            study.add_trial(create_trial(params=params, distributions=dists, value=t.value))
        else:
            study.add_trial(create_trial(params=params, distributions=dists, state=TrialState.FAIL))
    out: list[tuple[dict[str, Value], int | None]] = []
    for _ in range(count):
        trial = study.ask(dists)
        out.append(({k: _plain(v) for k, v in trial.params.items()}, None))
    return out


def _fit(dist: Any, value: Any) -> Any:
    """A recorded value inside its distribution (a choice compared as text: YAML may have read
    ``1`` where the trial recorded ``'1'``)."""
    from optuna.distributions import CategoricalDistribution  # optuna: see distributions

    if isinstance(dist, CategoricalDistribution):
        return next((c for c in dist.choices if str(c) == str(value)), dist.choices[0])
    return min(max(value, dist.low), dist.high)


def _plain(value: Any) -> Value:
    if isinstance(value, float):
        return float(f"{value:.6g}")
    return value
