"""The report's section for studies trained with the master/worker engine (seed 004): speed-up
and efficiency per worker count, the staleness of the updates, the master's busy fraction (the
seed's hypothesis: the master's updates and communication limit the speed-up), each worker's
wait for weights, lost workers, and the validation figure against the number of workers, beside
a synchronous study of the same sizes when the report has one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hpcscale.analysis import plots
from hpcscale.analysis.results import file_tag

Block = tuple[str, Any]


def _mw(job: dict[str, Any]) -> dict[str, Any] | None:
    return job.get("master_worker") if job.get("status") == "completed" else None


def _quality(r: dict[str, Any]) -> tuple[str, str, str]:
    q = (r.get("report") or {}).get("quality") or {"key": "val_accuracy", "label": "val acc"}
    return q["key"], q.get("label", q["key"]), q.get("format", ".3f")


def _fmt(value: Any, spec: str) -> str:
    return "–" if value is None else f"{value:{spec}}"


def section(results: list[dict[str, Any]], out: Path) -> list[Block]:
    """Blocks for every master/worker study among ``results`` (none: no blocks)."""
    blocks: list[Block] = []
    sync = [r for r in results if not any(_mw(j) for j in r["jobs"])]
    for r in results:
        jobs = [j for j in r["jobs"] if _mw(j)]
        if not jobs:
            continue
        key, label, spec = _quality(r)
        base = min(jobs, key=lambda j: j["master_worker"]["workers"])
        rate0 = base.get("epoch_rate_per_min")
        w0 = base["master_worker"]["workers"]
        rows, series = [], []
        for j in sorted(jobs, key=lambda j: j["master_worker"]["workers"]):
            m = j["master_worker"]
            workers = m["workers"]
            speedup = (
                j["epoch_rate_per_min"] / rate0 if rate0 and j.get("epoch_rate_per_min") else None
            )
            eff = speedup / (workers / w0) if speedup else None
            busy = m.get("master_busy") or {}
            waits = [w.get("wait_for_weights_s") or 0.0 for w in m["per_worker"].values()]
            lost = j.get("lost_workers") or []
            rows.append([
                j["label"], workers, m["group_size"], m["rule"], m["updates"], m["rejected"],
                _fmt(j.get("samples_per_s"), ".1f"), _fmt(speedup, ".2f"), _fmt(eff, ".2f"),
                _fmt(m.get("staleness_mean"), ".2f"), _fmt(m.get("staleness_max"), "d"),
                _fmt(busy.get("apply_fraction"), ".1%"), _fmt(busy.get("send_fraction"), ".1%"),
                _fmt(busy.get("idle_fraction"), ".1%"),
                _fmt(sum(waits) / len(waits) if waits else None, ".2f"),
                _fmt(j.get(key), spec),
                ", ".join(f"worker {w['worker']} (ranks {w['ranks']}) at {w['t_s']:.0f} s"
                          for w in lost) or "–",
            ])  # fmt: skip
            series.append((workers, speedup, j.get(key), m.get("staleness") or {}))
        blocks += [
            ("h2", f"Master/worker — study {r['study']} ({r.get('model') or ''})"),
            (
                "p",
                "Rank 0 is the master (applies updates, serves weights); workers are groups of "
                "ranks. Speed-up: epochs of data applied per minute against the fewest workers; "
                "efficiency: speed-up per worker. Staleness: updates the master made between a "
                "worker's pull and its gradient's arrival. Master time: applying, sending, idle "
                "(fractions of its training time). Wait: seconds a worker spent waiting for "
                "weights, over the run.",
            ),
            (
                "table",
                (
                    [
                        "job",
                        "workers",
                        "group",
                        "rule",
                        "updates",
                        "refused",
                        "samples/s",
                        "speed-up",
                        "efficiency",
                        "staleness mean",
                        "max",
                        "master applying",
                        "sending",
                        "idle",
                        "wait for weights s",
                        label,
                        "lost workers",
                    ],
                    rows,
                ),
            ),
        ]
        beside = _beside(r, sync, key, spec)
        if beside:
            blocks += beside
        path = _figure(r, series, sync, key, label, out)
        if path is not None:
            blocks.append(("img", (path.name, "speed-up, staleness and validation per worker")))
    return blocks


def _beside(r: dict[str, Any], sync: list[dict[str, Any]], key: str, spec: str) -> list[Block]:
    """The synchronous study of the same sizes (ranks), row by row."""
    mine = {j["n"]: j for j in r["jobs"] if _mw(j)}
    rows = []
    for s in sync:
        theirs = {j["n"]: j for j in s["jobs"] if j.get("status") == "completed"}
        for n in sorted(set(mine) & set(theirs)):
            a, b = mine[n], theirs[n]
            rows.append([
                n, f"{a['master_worker']['workers']} workers", _fmt(a.get("samples_per_s"), ".1f"),
                _fmt(b.get("samples_per_s"), ".1f"), _fmt(a.get("speedup"), ".2f"),
                _fmt(b.get("speedup"), ".2f"), _fmt(a.get(key), spec), _fmt(b.get(key), spec),
                s["study"],
            ])  # fmt: skip
    if not rows:
        return []
    return [
        ("p", "Beside the synchronous engine on the same numbers of ranks (speed-up against "
              "each study's smallest job, in ranks):"),
        ("table", (["ranks", "master/worker", "samples/s m/w", "samples/s sync", "speed-up m/w",
                    "speed-up sync", f"{key} m/w", f"{key} sync", "sync study"], rows)),
    ]  # fmt: skip


def _figure(
    r: dict[str, Any],
    series: list[tuple[int, float | None, float | None, dict[str, int]]],
    sync: list[dict[str, Any]],
    key: str,
    label: str,
    out: Path,
) -> Path | None:
    if not series:
        return None
    import matplotlib  # matplotlib (slow, the [plots] extra) only when a report draws

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1, 3, figsize=(plots.SIZE_IN[0] * 1.4, plots.SIZE_IN[1]), dpi=plots.DPI
    )
    ax1, ax2, ax3 = axes
    workers = [s[0] for s in series]
    ax1.plot(workers, [s[1] for s in series], "o-", label="master/worker (workers)")
    ax1.plot(workers, [w / workers[0] for w in workers], ":", color="grey", label="linear")
    for s in sync:
        done = [j for j in s["jobs"] if j.get("speedup") is not None]
        if done:
            ax1.plot([j["n"] for j in done], [j["speedup"] for j in done], "s--",
                     label=f"synchronous {s['study']} (ranks)")  # fmt: skip
    ax1.set(xlabel="workers (ranks for synchronous)", ylabel="speed-up", title="speed-up")
    ax1.legend(fontsize=7)
    ax2.plot(workers, [s[2] for s in series], "o-", label="master/worker")
    for s in sync:
        done = [j for j in s["jobs"] if j.get(key) is not None]
        ax2.plot([j["n"] for j in done], [j[key] for j in done], "s--", label="synchronous")
    ax2.set(xlabel="workers (ranks for synchronous)", ylabel=label, title="validation")
    ax2.legend(fontsize=7)
    width = 0.8 / len(series)
    for i, (w, _, _, hist) in enumerate(series):
        ks = [int(k) for k in hist]
        total = sum(hist.values()) or 1
        ax3.bar([k + i * width for k in ks], [hist[str(k)] / total for k in ks], width,
                label=f"{w} workers")  # fmt: skip
    ax3.set(xlabel="staleness (updates)", ylabel="share of updates", title="staleness")
    ax3.legend(fontsize=7)
    return plots.save(plt, fig, out / f"master-worker-{file_tag(r)}.png")
