"""The report's section per study type beyond a scaling study: a sweep's table and plots of
time per epoch and the validation figure against the swept values; K-fold's table per fold
with mean ± standard deviation (per class where the summaries have a confusion matrix); an
optimisation's trial history, best point and figure-of-merit plot.

Each figure is read from the job summaries as the workload declares it (``report.quality``:
the GAN's figure of merit, the jets' ROC-AUC; else the validation accuracy): no workload is
named here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hpcscale.analysis.plots import save, two_panels
from hpcscale.analysis.studies.registry import STUDY_KINDS
from hpcscale.fmt import duration_text, mean_std
from hpcscale.train.records import DLT_PARTS

Block = tuple[str, Any]


def sections(r: dict[str, Any], out: Path, tag: str) -> list[Block]:
    """The study kind's own report section (``hpcscale.analysis.studies``, by ``r["kind"]``)."""
    return STUDY_KINDS.get(r.get("kind") or "scaling").section(r, out, tag)


def quality(r: dict[str, Any]) -> tuple[str, str, bool]:
    """(summary key, label, shown as a percentage) of the study's validation figure."""
    q = (r.get("report") or {}).get("quality")
    if q:
        return q["key"], q["label"], q.get("format") == "pct"
    return "val_accuracy", "val acc", True


def _num(value: Any, pct: bool = False, spec: str = ".3f") -> str:
    if value is None:
        return "–"
    return f"{100 * value:.1f} %" if pct else f"{value:{spec}}"


def epoch_seconds(job: dict[str, Any]) -> float | None:
    """Training time per epoch: the wall-clock epoch rate's inverse, in seconds."""
    rate = job.get("epoch_rate_per_min")
    return 60.0 / rate if rate else None


# --- sweeps -----------------------------------------------------------------------------------


def sweep_section(r: dict[str, Any], out: Path, tag: str) -> list[Block]:
    key, label, pct = quality(r)
    names = list(((r.get("spec") or {}).get("sweep") or {}).keys())
    if not names:
        names = sorted({k for j in r["jobs"] for k in (j.get("params") or {})})
    rows = [
        [j["label"], str(j["n"]), *[str((j.get("params") or {}).get(n, "–")) for n in names],
         j["status"], duration_text(epoch_seconds(j)), _num(j.get("samples_per_s"), spec=".1f"),
         duration_text(j.get("ttl_s")), _num(j.get(key), pct)]
        for j in r["jobs"]
    ]  # fmt: skip
    blocks: list[Block] = [
        ("h2", f"Sweep over {', '.join(names)} — study {r['study']}"),
        (
            "p",
            "One job per size and swept value. Time per epoch: the training phase's wall "
            f"clock per epoch (60 / epoch rate); {label}: the workload's validation figure.",
        ),
        ("table", (["job", "N", *names, "status", "time/epoch", f"{r.get('sample_unit')}/s",
                    "TTL", label], rows)),
    ]  # fmt: skip
    blocks += dlt_blocks(r, names)
    for name in names:
        file = f"sweep_{name}_{tag}.png"
        if sweep_plot(r, name, key, label, pct, out / file) is not None:
            blocks.append(("img", (file, f"time per epoch and {label} vs {name}")))
    return blocks


def dlt_parts_present(jobs: list[dict[str, Any]]) -> list[str]:
    """DLT's parts, in start-up order, that any of ``jobs`` measured (placement only where a
    job placed its data)."""
    return [p for p in DLT_PARTS.values() if any(p in (j.get("dlt_parts_s") or {}) for j in jobs)]


def dlt_blocks(r: dict[str, Any], names: list[str]) -> list[Block]:
    """DLT and its parts per job of a sweep: where a swept option moves the start-up (a data
    placement its placement and staging, a compile mode its first step)."""
    jobs = [j for j in r["jobs"] if j.get("dlt_parts_s")]
    if not jobs:
        return []
    parts = dlt_parts_present(jobs)
    rows = [
        [j["label"], str(j["n"]), *[str((j.get("params") or {}).get(n, "–")) for n in names],
         *[duration_text(j["dlt_parts_s"].get(p)) for p in parts], duration_text(j.get("dlt_s"))]
        for j in jobs
    ]  # fmt: skip
    return [
        (
            "p",
            "Where each job's DLT goes (its slowest rank's start-up): placement is the data set "
            "copied to the node (--data-placement node-local) or found in the image (image); "
            "staging is the workload reading it.",
        ),
        ("table", (["job", "N", *names, *[p.replace("_", " ") for p in parts], "DLT"], rows)),
    ]


def sweep_plot(
    r: dict[str, Any], name: str, key: str, label: str, pct: bool, path: Path
) -> Path | None:
    """Time per epoch (left) and the validation figure (right) against one swept option; one
    line per size and combination of the other swept options."""
    done = [j for j in r["jobs"] if j["status"] == "completed" and name in (j.get("params") or {})]
    if not done:
        return None
    values = [j["params"][name] for j in done]
    numeric = all(isinstance(v, int | float) for v in values)
    order = sorted(set(map(str, values)), key=lambda v: float(v) if numeric else v)
    plt, fig, (left, right) = two_panels()
    groups: dict[str, list[dict[str, Any]]] = {}
    for j in done:
        rest = " ".join(f"{k}={v}" for k, v in j["params"].items() if k != name)
        groups.setdefault(f"N={j['n']} {rest}", []).append(j)
    for group, jobs in groups.items():
        jobs.sort(key=lambda j: order.index(str(j["params"][name])))
        xs = [j["params"][name] if numeric else order.index(str(j["params"][name])) for j in jobs]
        ys = [epoch_seconds(j) for j in jobs]
        qs = [j.get(key) for j in jobs]
        left.plot(xs, [y if y is not None else np.nan for y in ys], "o-", label=group.strip())
        right.plot(xs, [(100 * q if pct else q) if q is not None else np.nan for q in qs], "o-",
                   label=group.strip())  # fmt: skip
    for ax, ylabel in ((left, "time per epoch [s]"), (right, label + (" [%]" if pct else ""))):
        ax.set_xlabel(name)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if numeric and min(values) > 0 and max(values) / min(values) >= 10:
            _log_x(ax)
        if not numeric:
            ax.set_xticks(range(len(order)), order)
    left.legend(fontsize=8)
    fig.suptitle(f"{r['site']} {r.get('model') or ''}: sweep over {name}")
    return save(plt, fig, path)


# --- K-fold -----------------------------------------------------------------------------------


def class_accuracy(job: dict[str, Any]) -> list[float] | None:
    """Per-class accuracy (the confusion matrix's diagonal, rows true), as fractions."""
    conf = job.get("confusion_percent")
    if not conf:
        return None
    return [row[i] / 100.0 for i, row in enumerate(conf)]


def kfold_section(r: dict[str, Any]) -> list[Block]:
    key, label, pct = quality(r)
    groups: dict[str, list[dict[str, Any]]] = {}
    for j in r["jobs"]:
        groups.setdefault(j["label"].rsplit("-fold", 1)[0], []).append(j)
    blocks: list[Block] = [
        ("h2", f"K-fold cross-validation — study {r['study']}"),
        (
            "p",
            f"{len(r['jobs'])} jobs: each fold of the events is one job's validation set, the "
            "others its training set. Mean ± standard deviation (n − 1) over the completed folds"
            " (their spread: initial weights, rounding and the choice of validation set).",
        ),
    ]
    for group, jobs in groups.items():
        classes = next((j.get("classes") for j in jobs if j.get("classes")), None)
        per_class = [class_accuracy(j) for j in jobs]
        head = ["fold", "job", "status", label, *(classes or [])]
        rows = []
        for j, pc in zip(jobs, per_class, strict=True):
            cells = [_num(x, True) for x in pc] if (pc and classes) else []
            cells += ["–"] * (len(classes or []) - len(cells))
            rows.append([str(j.get("fold", "–")), j["label"], j["status"],
                         _num(j.get(key), pct), *cells])  # fmt: skip
        done = [j for j in jobs if j["status"] == "completed"]
        stats = mean_std([j.get(key) for j in done])
        row = ["mean ± std", f"{len(done)} of {len(jobs)} folds", "", _pm(stats, pct)]
        for i in range(len(classes or [])):
            row.append(_pm(mean_std([pc[i] for pc in per_class if pc]), True))
        rows.append(row)
        if len(groups) > 1:
            blocks.append(("p", f"Point {group}:"))
        blocks.append(("table", (head, rows)))
    return blocks


def _pm(stats: tuple[float, float] | None, pct: bool) -> str:
    if stats is None:
        return "–"
    mean, std = stats
    return f"{100 * mean:.1f} ± {100 * std:.1f} %" if pct else f"{mean:.4g} ± {std:.2g}"


# --- optimisation -----------------------------------------------------------------------------


def optimize_section(r: dict[str, Any], out: Path, tag: str) -> list[Block]:
    opt = (r.get("spec") or {}).get("optimize") or {}
    objective = opt.get("objective", "val_accuracy")
    maximize = opt.get("direction", "maximize") == "maximize"
    trials = [j for j in r["jobs"] if j.get("trial") is not None]
    names = list(opt.get("space") or {})
    rows, best_so_far, best = [], None, None
    for j in sorted(trials, key=lambda j: j["trial"]):
        v = j.get("value")
        if v is not None and (best_so_far is None or (v > best_so_far) == maximize):
            best_so_far, best = v, j
        rows.append([j["label"], *([str(j.get("generation"))] if opt.get("method") ==
                     "evolution" else []), *[_param(j, n) for n in names], j["status"],
                     _num(v, spec=".4g"), _num(best_so_far, spec=".4g")])  # fmt: skip
    gen = ["generation"] if opt.get("method") == "evolution" else []
    method = {
        "gp": "Bayesian optimisation with a Gaussian-process prior (Optuna GPSampler)",
        "evolution": "an evolutionary algorithm",
    }.get(opt.get("method", "gp"), "")
    text = (
        f"{method}: {len(trials)} of {opt.get('trials')} trials, {opt.get('parallel')} at a "
        f"time, {'maximising' if maximize else 'minimising'} {objective}."
    )
    if best is not None:
        text += f" Best: trial {best['label']} ({_params(best, names)}), {objective} "
        text += f"{best['value']:.4g}, job folder {best['dir']}."
    blocks: list[Block] = [
        ("h2", f"Optimisation of {', '.join(names)} — study {r['study']}"),
        ("p", text),
        ("table", (["trial", *gen, *names, "status", objective, "best so far"], rows)),
    ]
    file = f"trials_{tag}.png"
    if optimize_plot(trials, names, opt, out / file) is not None:
        blocks.append(("img", (file, f"{objective} per trial")))
    return blocks


def _param(j: dict[str, Any], name: str) -> str:
    v = (j.get("params") or {}).get(name)
    return "–" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))


def _params(j: dict[str, Any], names: list[str]) -> str:
    return ", ".join(f"{n}={_param(j, n)}" for n in names)


def optimize_plot(
    trials: list[dict[str, Any]], names: list[str], opt: dict[str, Any], path: Path
) -> Path | None:
    """The figure of merit per trial with the best so far (left), and against the first
    searched option (right)."""
    scored = sorted((j for j in trials if j.get("value") is not None), key=lambda j: j["trial"])
    if not scored:
        return None
    maximize = opt.get("direction", "maximize") == "maximize"
    plt, fig, (left, right) = two_panels()
    xs = [j["trial"] for j in scored]
    ys = [j["value"] for j in scored]
    run = np.maximum.accumulate(ys) if maximize else np.minimum.accumulate(ys)
    left.plot(xs, ys, "o", label="trial")
    left.step(xs, run, where="post", label="best so far")
    left.set_xlabel("trial")
    left.xaxis.get_major_locator().set_params(integer=True)
    objective = opt.get("objective", "val_accuracy")
    left.set_ylabel(objective)
    left.legend()
    name = names[0] if names else None
    if name is not None:
        px = [(j.get("params") or {}).get(name) for j in scored]
        if all(isinstance(v, int | float) for v in px):
            right.plot(px, ys, "o")
            if ((opt.get("space") or {}).get(name) or {}).get("log"):
                _log_x(right)
        else:
            order = sorted(set(map(str, px)))
            right.plot([order.index(str(v)) for v in px], ys, "o")
            right.set_xticks(range(len(order)), order)
        right.set_xlabel(name)
        right.set_ylabel(objective)
    for ax in (left, right):
        ax.grid(alpha=0.3)
    return save(plt, fig, path)


def _log_x(ax: Any) -> None:
    """A log x axis labelled at its decades only (minor labels crowd a short range)."""
    from matplotlib.ticker import NullFormatter  # matplotlib: slow; only a report draws

    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())
