"""Report figures as PNG (matplotlib, Agg): one function per figure, fixed 960 × 600 pixels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hpcscale.analysis.results import PAPER, study_label
from hpcscale.data.simulate import LABELS
from hpcscale.fmt import duration_text
from hpcscale.train.records import read_records

SIZE_IN, DPI = (9.6, 6.0), 100  # 960 × 600 px
# The step's critical path; decompression runs ahead in a thread and is drawn beside it.
SPLIT = [
    ("data_wait_s", "data wait"),
    ("h2d_s", "host→device"),
    ("compute_s", "compute"),
    ("allreduce_s", "allreduce wait"),
]
# Data preparation in the prefetch thread: off the step's critical path, drawn as markers.
THREAD_SPLIT = [
    ("decompress_s", "decompress (prefetch thread)"),
    ("assemble_s", "assemble sparse batch (prefetch thread)"),
]


def _figure():  # type: ignore[no-untyped-def]
    # matplotlib (slow, the [plots] extra) only when a report draws; so in two_panels
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=SIZE_IN, dpi=DPI)
    return plt, fig, ax


def two_panels():  # type: ignore[no-untyped-def]
    """(pyplot, figure, (left, right)): two plots side by side, the report's figure size."""
    import matplotlib  # matplotlib: see _figure

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=SIZE_IN, dpi=DPI)
    return plt, fig, axes


def save(plt, fig, path: Path) -> Path:  # type: ignore[no-untyped-def]
    """Write ``fig`` to ``path`` as PNG and close it."""
    return _save(plt, fig, path)


def _save(plt, fig, path: Path) -> Path:  # type: ignore[no-untyped-def]
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def loss_curves(result: dict[str, Any], out: Path) -> Path | None:
    """Smoothed global training loss vs wall time per N, with DLT, TTL, target and walltime."""
    plt, fig, ax = _figure()
    colors = plt.cm.viridis(np.linspace(0, 0.9, max(len(result["jobs"]), 1)))
    t_max = 0.0
    drawn, top = 0, 0.0
    for job, color in zip(result["jobs"], colors, strict=False):
        path = Path(job["dir"]) / "rank-0.jsonl"
        if not path.exists():
            continue
        sync = [r for r in read_records(path) if r.get("kind") == "sync"]
        if not sync:
            continue
        t = np.array([r["t"] for r in sync])
        raw = np.array([r["global_loss"] for r in sync])
        smooth = np.array(
            [np.nan if r["smoothed_loss"] is None else r["smoothed_loss"] for r in sync]
        )
        t_max = max(t_max, float(t[-1]))
        drawn += 1
        # the axis follows the smoothed curves (the raw loss's first steps would squash them)
        shown = smooth[np.isfinite(smooth)] if np.isfinite(smooth).any() else raw[np.isfinite(raw)]
        if shown.size:
            top = max(top, float(np.percentile(shown, 98)))
        ax.plot(t, raw, color=color, alpha=0.2, lw=0.8)
        ax.plot(t, smooth, color=color, lw=1.8, label=f"N = {job['n']}")
        if job.get("dlt_s"):
            ax.axvline(job["dlt_s"], color=color, ls=":", lw=1)
        if job.get("ttl_s"):
            ax.plot([job["ttl_s"]], [result["target_loss"]], "o", color=color, ms=7)
    if not drawn:  # no job has a loss curve: no empty plot
        plt.close(fig)
        return None
    if top > 0:
        ax.set_ylim(top=1.15 * max(top, result.get("target_loss") or 0))
    if result.get("target_loss"):
        ax.axhline(
            result["target_loss"],
            color="crimson",
            ls="--",
            lw=1,
            label=f"target {result['target_loss']:g} (TTL: dots)",
        )
    limits = [w for w in result.get("walltime_s", {}).values() if w]
    note = walltime_note(min(limits), t_max) if limits else None
    if limits and note is None:
        ax.axvline(min(limits), color="black", lw=1.5, label="walltime limit")
    elif note:
        ax.text(
            0.99,
            0.98,
            note,
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=9,
        )
    ax.set_xlabel("wall time since process start [s] (dotted: DLT)")
    label = (result.get("report") or {}).get("loss_label")
    ax.set_ylabel(
        f"{label.split(' (')[0]}, smoothed"
        if label
        else f"global training loss ({result.get('loss') or '?'} loss), smoothed"
    )
    ax.set_title(f"{study_label(result)}: training loss vs wall time (cf. paper Fig. 3a)")
    ax.legend(loc="upper right", fontsize=9)
    ax.grid(alpha=0.3)
    return _save(plt, fig, out)


def walltime_note(limit_s: float, t_max: float) -> str | None:
    """None when the walltime limit fits on the loss plot's time axis (drawn as a line), else
    the note that names it: ``walltime limit 2 h 50 min (off scale)``."""
    if limit_s <= 1.5 * max(t_max, 1):
        return None
    return f"walltime limit {duration_text(limit_s)} (off scale)"


def scaling(
    results: list[dict[str, Any]],
    key: str,
    fit: str,
    out: Path,
    ylabel: str,
    ideal: float,
    paper: str | None,
) -> Path | None:
    """A log-log plot of one figure vs N for every study, with its fit and the ideal line, and
    the paper's exponent ``paper`` ("alpha", "beta") for the study's workload where it has one."""
    plt, fig, ax = _figure()
    drawn: set[str | None] = set()
    for i, result in enumerate(results):
        color = f"C{i}"
        pts = [
            (j["n"], j[key]) for j in result["jobs"] if j["status"] == "completed" and j.get(key)
        ]
        if not pts:
            continue
        n, y = np.array(pts, dtype=float).T
        ax.loglog(n, y, "o", color=color, ms=7, label=study_label(result))
        law = result["fits"].get(fit)
        grid = np.geomspace(n.min(), n.max(), 50)
        if law:
            ax.loglog(
                grid,
                law["prefactor"] * grid ** law["exponent"],
                "-",
                color=color,
                label=f"fit: N^{law['exponent']:+.2f}"
                + (
                    f" [{law['ci_low']:+.2f}, {law['ci_high']:+.2f}]"
                    if law["ci_low"] is not None
                    else ""
                ),
            )
        ax.loglog(
            grid,
            y[0] * (grid / n[0]) ** ideal,
            ":",
            color=color,
            alpha=0.6,
            label=f"ideal: N^{ideal:+g}",
        )
        exponent = PAPER.get(result.get("workload") or "", {}).get(paper or "")  # type: ignore[union-attr]
        if exponent is not None:
            name = result.get("workload")
            ax.loglog(
                grid,
                y[0] * (grid / n[0]) ** exponent,
                "--",
                color=color,
                alpha=0.45,
                label=f"paper {name} (SummitDev): N^{exponent:+g}" if name not in drawn else None,
            )
            drawn.add(name)
    if not ax.get_legend_handles_labels()[0]:  # no completed job has this figure: no plot
        plt.close(fig)
        return None
    ax.set_xlabel("N (GPUs, or ranks on CPU sites)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=9)
    return _save(plt, fig, out)


def confusion(result: dict[str, Any], out: Path) -> Path | None:
    """Heat map of the confusion matrix of the study's largest completed job."""
    jobs = [j for j in result["jobs"] if j["status"] == "completed" and j.get("confusion_percent")]
    if not jobs:
        return None
    job = jobs[-1]
    cm = np.array(job["confusion_percent"])
    plt, fig, ax = _figure()
    image = ax.imshow(cm, cmap="Blues", vmin=0, vmax=100)
    for (i, k), v in np.ndenumerate(cm):
        ax.text(
            k,
            i,
            f"{v:.1f}",
            ha="center",
            va="center",
            color="white" if v > 60 else "black",
            fontsize=11,
        )
    ax.set_xticks(range(5), LABELS)
    ax.set_yticks(range(5), LABELS)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    acc = job.get("val_accuracy")
    ax.set_title(
        f"{study_label(result)}, N = {job['n']}: validation confusion (%), "
        f"accuracy {100 * acc:.1f} %"
        if acc is not None
        else ""
    )
    fig.colorbar(image, ax=ax, label="% of true class")
    return _save(plt, fig, out)


def time_split(result: dict[str, Any], out: Path) -> Path | None:
    """Median per-step time split as stacked bars per N."""
    jobs = [j for j in result["jobs"] if j.get("step_time_split_s")]
    if not jobs:
        return None
    plt, fig, ax = _figure()
    labels = [str(j["n"]) for j in jobs]
    bottom = np.zeros(len(jobs))
    for i, (key, name) in enumerate(SPLIT):
        values = np.array([j["step_time_split_s"].get(key, 0.0) * 1e3 for j in jobs])
        ax.bar(labels, values, bottom=bottom, color=f"C{i}", label=name)
        bottom += values
    for (key, name), marker in zip(THREAD_SPLIT, "x+", strict=True):
        if any(key in j["step_time_split_s"] for j in jobs):
            side = [j["step_time_split_s"].get(key, 0.0) * 1e3 for j in jobs]
            ax.plot(labels, side, "k" + marker, ms=10, mew=2, label=name)
    ax.set_xlabel("N")
    ax.set_ylabel("median time per step [ms]")
    ax.set_title(f"{study_label(result)}: where a training step's time goes")
    ax.legend(fontsize=9)
    ax.grid(alpha=0.3, axis="y")
    return _save(plt, fig, out)


def noise_scale(result: dict[str, Any], out: Path) -> Path | None:
    """B_noise (smoothed, from the jobs' gradients) against the step, one line per job, with
    each job's global batch B dashed: where B < B_noise, a larger batch still saves steps."""
    series = []
    for job in result["jobs"]:
        rows = [r for r in _sync_rows(job) if r.get("b_noise") is not None]
        if rows:
            series.append((job, [r["step"] for r in rows], [r["b_noise"] for r in rows]))
    if not series:
        return None
    plt, fig, ax = _figure()
    for i, (job, steps, values) in enumerate(series):
        ax.plot(steps, values, color=f"C{i}", label=f"N={job['n']}: B_noise")
        if job.get("global_batch"):
            ax.axhline(job["global_batch"], color=f"C{i}", ls="--", lw=1, label=f"N={job['n']}: B")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("gradient noise scale B_noise [samples]")
    ax.set_title(f"{study_label(result)}: gradient noise scale (McCandlish et al. 2018)")
    ax.legend(fontsize=9)
    ax.grid(alpha=0.3)
    return _save(plt, fig, out)


def predicted(result: dict[str, Any], points: list[dict[str, Any]], out: Path) -> Path:
    """TTL and epoch rate against N: measured (the sizes' means) and each size as predicted
    from the smaller sizes only."""
    plt, fig, axes = two_panels()
    for ax, key, label in zip(axes, ("ttl_s", "epoch_rate_per_min"), ("TTL [s]", "epochs/min"),
                              strict=True):  # fmt: skip
        ns = [p["n"] for p in points]
        ax.plot(ns, [p[key][0] if p[key][0] is not None else np.nan for p in points], "o-",
                label="measured")  # fmt: skip
        guessed = [(p["n"], p[key][1]) for p in points if p[key][1] is not None]
        ax.plot([g[0] for g in guessed], [g[1] for g in guessed], "x--", ms=9,
                label="predicted from smaller N")  # fmt: skip
        ax.set_xscale("log", base=2)
        ax.set_xlabel("N")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=9)
    fig.suptitle(f"{study_label(result)}: predicted beside measured")
    return _save(plt, fig, out)


def _sync_rows(job: dict[str, Any]) -> list[dict[str, Any]]:
    path = Path(job["dir"]) / "rank-0.jsonl"
    return [r for r in read_records(path) if r.get("kind") == "sync"] if path.exists() else []


def metric_curves(result: dict[str, Any], decl: dict[str, Any], out: Path) -> Path | None:
    """Step metrics from the records vs wall time (``decl["keys"]``: e.g. a GAN's d_loss and
    g_loss), one colour per N and one line style per metric, smoothed over 10 steps."""
    keys, labels = decl["keys"], decl.get("labels", decl["keys"])
    plt, fig, ax = _figure()
    colors = plt.cm.viridis(np.linspace(0, 0.9, max(len(result["jobs"]), 1)))
    drawn = False
    for job, color in zip(result["jobs"], colors, strict=False):
        rows = _sync_rows(job)
        for key, label, style in zip(keys, labels, ("-", "--", ":", "-."), strict=False):
            pts = [(r["t"], r[f"global_{key}"]) for r in rows if f"global_{key}" in r]
            if len(pts) < 2:
                continue
            t, y = np.array(pts).T
            k = min(10, len(y))
            smooth = np.convolve(y, np.ones(k) / k, mode="valid")
            ax.plot(t[k - 1 :], smooth, style, color=color, label=f"{label}, N = {job['n']}")
            drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("wall time since process start [s]")
    ax.set_ylabel(decl.get("ylabel", "value") + " (10-step mean)")
    ax.set_title(f"{study_label(result)}: {decl.get('title', ', '.join(keys))}")
    ax.legend(fontsize=9)
    ax.grid(alpha=0.3)
    return _save(plt, fig, out)


def xy_curves(result: dict[str, Any], decl: dict[str, Any], out: Path) -> Path | None:
    """A curve each completed job stores in its summary (``decl["key"]`` with lists
    ``decl["x"]``, ``decl["y"]``: e.g. a ROC curve), one per N."""
    jobs = [j for j in result["jobs"] if j["status"] == "completed" and j.get(decl["key"])]
    if not jobs:
        return None
    plt, fig, ax = _figure()
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(jobs)))
    quality = (result.get("report") or {}).get("quality") or {}
    for job, color in zip(jobs, colors, strict=True):
        curve = job[decl["key"]]
        value = job.get(quality["key"]) if quality else None
        note = f", {quality['label']} {value:.3f}" if value is not None else ""
        ax.plot(curve[decl["x"]], curve[decl["y"]], color=color, label=f"N = {job['n']}{note}")
    if decl.get("diagonal"):
        ax.plot([0, 1], [0, 1], ":", color="grey", label="chance")
    ax.set_xlabel(decl.get("xlabel", decl["x"]))
    ax.set_ylabel(decl.get("ylabel", decl["y"]))
    ax.set_title(f"{study_label(result)}: {decl.get('title', decl['key'])}")
    ax.legend(fontsize=9)
    ax.grid(alpha=0.3)
    return _save(plt, fig, out)


def versus(results: list[dict[str, Any]], decl: dict[str, Any], out: Path) -> Path:
    """``decl["y"]`` against ``decl["x"]`` for every completed job of every study (e.g. ROC-AUC
    vs minibatch), one marker colour per N."""
    plt, fig, ax = _figure()
    sizes = sorted({j["n"] for r in results for j in r["jobs"]})
    for i, n in enumerate(sizes):
        pts = sorted(
            (j[decl["x"]], j[decl["y"]])
            for r in results
            for j in r["jobs"]
            if j["n"] == n and j["status"] == "completed" and j.get(decl["y"]) is not None
            and j.get(decl["x"]) is not None
        )  # fmt: skip
        if pts:
            x, y = np.array(pts, dtype=float).T
            ax.plot(x, y, "o-", color=f"C{i}", ms=7, label=f"N = {n}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel(decl.get("xlabel", decl["x"]))
    ax.set_ylabel(decl.get("ylabel", decl["y"]))
    ax.set_title(decl.get("title", f"{decl['y']} vs {decl['x']}"))
    ax.grid(alpha=0.3, which="both")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=9)
    return _save(plt, fig, out)
