"""Performance references in ReFrame's style, and a study checked against them (``hpcscale
check``): a centre runs it after a system change, in a cron job or CI.

A reference is a figure with relative tolerances, per site, model and size, as ReFrame writes
``'sys:part': {'perf': (value, lower, upper, unit)}`` — here in a YAML file::

    local:                      # site
      jishnet-small:            # model
        2:                      # size (GPUs, else ranks)
          epoch_rate_per_min: [5.0, -0.10, null]   # at least 4.5, no upper bound
          ttl_s: [60, null, 0.20]                   # at most 72

or another study (``--against``: the same figures at the same sizes, the worse direction only,
within ``tolerance``), or the prediction from the study's own smaller sizes. Repeated jobs of a
size are averaged, and their spread is named with the figure.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpcscale.analysis.results import job_size
from hpcscale.errors import UserError
from hpcscale.sites.yamlload import load_yaml
from hpcscale.study import collect, load

# The figures checked, and whether larger is better (rates) or worse (times).
FIGURES = {
    "ttl_s": False,
    "dlt_s": False,
    "steady_step_s": False,
    "epoch_rate_per_min": True,
    "samples_per_s": True,
}
UNITS = {"ttl_s": "s", "dlt_s": "s", "steady_step_s": "s", "epoch_rate_per_min": "/min",
         "samples_per_s": "/s"}  # fmt: skip


@dataclass(frozen=True)
class Reference:
    value: float
    lower: float | None  # relative: -0.1 is 10 % below
    upper: float | None
    source: str

    def bounds(self) -> tuple[float, float]:
        lo = self.value * (1 + self.lower) if self.lower is not None else -math.inf
        hi = self.value * (1 + self.upper) if self.upper is not None else math.inf
        return lo, hi


@dataclass(frozen=True)
class Measured:
    model: str
    n: int
    figure: str
    mean: float
    spread: float | None  # relative standard deviation over repeats (None: one job)
    jobs: int


def measured(study: Path) -> tuple[str, list[Measured]]:
    """The study's site and its figures per model and size (means over repeated jobs)."""
    manifest = load(study)
    groups: dict[tuple[str, int, str], list[float]] = {}
    for row in collect(study):
        if row.get("status") != "completed":
            continue
        model = row.get("model") or (row.get("config") or {}).get("model") or "?"
        for figure in FIGURES:
            value = row.get(figure)
            if isinstance(value, (int, float)) and math.isfinite(value):
                groups.setdefault((model, job_size(row), figure), []).append(float(value))
    out = []
    for (model, n, figure), values in sorted(groups.items()):
        mean = statistics.fmean(values)
        spread = statistics.stdev(values) / mean if len(values) > 1 and mean else None
        out.append(Measured(model, n, figure, mean, spread, len(values)))
    return manifest.site, out


def references_file(path: Path, site: str) -> Callable[[Measured], Reference | None]:
    """The references of ``site`` in a YAML file (see the module's docstring)."""
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of site → model → size → figure")
    table = data.get(site) or {}
    refs: dict[tuple[str, int, str], Reference] = {}
    for model, sizes in table.items():
        for size, figures in (sizes or {}).items():
            for figure, spec in (figures or {}).items():
                where = f"{path}: {site}.{model}.{size}.{figure}"
                if figure not in FIGURES:
                    raise UserError(f"{where}: unknown figure; allowed: {', '.join(FIGURES)}")
                if not (isinstance(spec, list) and len(spec) in (3, 4)):
                    raise UserError(f"{where}: expected [value, lower, upper] (fractions)")
                refs[(str(model), int(size), figure)] = Reference(
                    float(spec[0]), _frac(spec[1], where), _frac(spec[2], where), str(path)
                )
    return lambda m: refs.get((m.model, m.n, m.figure))


def descriptor_references(site: Any) -> Callable[[Measured], Reference | None] | None:
    """The references of the site's descriptor (``performance.references``), if it has any."""
    table = site.performance.references if site is not None else {}
    if not table:
        return None
    where = f"site {site.name}'s performance.references"
    refs = {
        (model, int(size), figure): Reference(spec[0], spec[1], spec[2], where)
        for model, sizes in table.items()
        for size, figures in sizes.items()
        for figure, spec in figures.items()
    }
    return lambda m: refs.get((m.model, m.n, m.figure))


def _frac(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if not isinstance(value, (int, float)):
        raise UserError(f"{where}: tolerance {value!r} must be a number (a fraction) or null")
    return float(value)


def against_study(other: Path, tolerance: float) -> Callable[[Measured], Reference | None]:
    """Another study's figures as references: the worse direction only, within ``tolerance``."""
    _, figures = measured(other)
    table = {(m.model, m.n, m.figure): m.mean for m in figures}

    def ref(m: Measured) -> Reference | None:
        value = table.get((m.model, m.n, m.figure))
        if value is None:
            return None
        larger_better = FIGURES[m.figure]
        lower, upper = (-tolerance, None) if larger_better else (None, tolerance)
        return Reference(value, lower, upper, str(other))

    return ref


def check(
    figures: list[Measured], ref: Callable[[Measured], Reference | None]
) -> tuple[list[str], int]:
    """Lines for the figures out of bounds, and how many figures had a reference."""
    bad, checked = [], 0
    for m in figures:
        r = ref(m)
        if r is None:
            continue
        checked += 1
        lo, hi = r.bounds()
        if lo <= m.mean <= hi:
            continue
        unit = UNITS[m.figure]
        side = f"< {lo:.4g}" if m.mean < lo else f"> {hi:.4g}"
        noise = (
            f", ±{m.spread:.0%} over {m.jobs} jobs" if m.spread is not None
            else f", {m.jobs} job" + ("s" if m.jobs != 1 else "")
        )  # fmt: skip
        bad.append(
            f"{m.model} N={m.n} {m.figure} {m.mean:.4g}{unit} {side}{unit} (reference "
            f"{r.value:.4g}{unit} {_tol(r)} from {r.source}{noise})"
        )
    return bad, checked


def _tol(r: Reference) -> str:
    lo = f"{r.lower:+.0%}" if r.lower is not None else "-inf"
    hi = f"{r.upper:+.0%}" if r.upper is not None else "+inf"
    return f"[{lo}, {hi}]"


def against_prediction(study: Path, tolerance: float) -> Callable[[Measured], Reference | None]:
    """Each size's prediction from the study's smaller sizes (both directions, ``tolerance``)."""
    from hpcscale.analysis import predict as model  # numpy and the bootstrap: only this needs it
    from hpcscale.analysis.measured import measured_jobs

    jobs = measured_jobs(study)
    site = model.study_site(study)
    table: dict[tuple[int, str], float] = {}
    for n in sorted({j.n for j in jobs}):
        smaller = [j for j in jobs if j.n < n]
        if not smaller:
            continue
        target = model.make_target(study, smaller, site, None, None, None)
        row = model.predict_size(model.fit_model(smaller), target, n)
        for figure in ("ttl_s", "dlt_s", "epoch_rate_per_min"):
            if row.get(figure) is not None:
                table[(n, figure)] = float(row[figure])  # type: ignore[arg-type]

    def ref(m: Measured) -> Reference | None:
        value = table.get((m.n, m.figure))
        return None if value is None else Reference(value, -tolerance, tolerance, "prediction")

    return ref
