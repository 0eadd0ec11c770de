"""Rich tables the CLI prints: study collections and a job's summary."""

from __future__ import annotations

import sys
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

from hpcscale.fmt import duration_text, mean_std, params_text, plural
from hpcscale.messages import cut, one_line
from hpcscale.sites.models import Gpus
from hpcscale.spec import SPEC_NAME
from hpcscale.spec import load as load_spec
from hpcscale.study import collect as collect_rows
from hpcscale.train.records import DLT_PARTS

out = Console()


def quality(summary: dict) -> tuple[str, str]:
    """A job's validation figure, as its workload's summary declares it (``report.quality``:
    the GAN's figure of merit, the jets' ROC-AUC), else its accuracy: (header, text)."""
    q = (summary.get("report") or {}).get("quality")
    if q:
        value = summary.get(q["key"])
        return q["label"], "-" if value is None else format(value, q["format"])
    acc = summary.get("val_accuracy")
    return "val acc", "-" if acc is None else f"{100 * acc:.1f} %"


def print_collect(study_dir: Path) -> None:
    rows = collect_rows(study_dir)

    def fmt(value: object, spec: str = ".1f") -> str:
        return "-" if value is None else f"{value:{spec}}"

    table = Table(
        box=box.SIMPLE_HEAD, title=str(study_dir), title_justify="left", padding=(0, 1, 0, 0),
        pad_edge=False,
    )  # fmt: skip
    unit = next((r["sample_unit"] for r in rows if r.get("sample_unit")), "samples")
    head = next((quality(r)[0] for r in rows if r.get("status") == "completed"), "val acc")
    cols = ("job", "ranks", "status", "DLT", "TTL", "epochs/min", f"{unit}/s", "steady",
            head)  # fmt: skip
    widest = max((len(str(r.get("label", ""))) for r in rows), default=3)
    # a job folder's name may be long: it folds, but never below a short label's width
    table.add_column(cols[0], overflow="fold", min_width=max(3, min(widest, 12)))
    for col in cols[1:]:
        table.add_column(col, no_wrap=True, min_width=len(col))
    for r in rows:
        table.add_row(
            r["label"],
            str(r["ranks"]),
            r["status"],
            duration_text(r.get("dlt_s")),
            duration_text(r.get("ttl_s")),
            fmt(r.get("epoch_rate_per_min"), ".2f"),
            fmt(r.get("samples_per_s", r.get("images_per_s"))),
            fmt(r.get("samples_per_s_steady")),
            quality(r)[1],
        )
    out.print(table)
    out.print(
        f"  {unit}/s: wall clock over the training phase; steady: from the median step time "
        "after warm-up"
    )
    for r in rows:
        if r.get("reason"):
            out.print(f"  {r['label']}: {r['reason']}")
        if r.get("rebuilt"):
            out.print(f"  {r['label']}: {r['rebuilt']}")
        for line in timing_lines(r):
            out.print(f"  {r['label']} {line}")
    for line in study_lines(study_dir, rows):
        out.print(line, soft_wrap=True)


def study_lines(study_dir: Path, rows: list[dict]) -> list[str]:
    """What a study of more than sizes adds below its table: K-fold's mean ± standard deviation
    of the validation figure, an optimisation's best trial."""
    path = Path(study_dir) / SPEC_NAME
    if not path.exists():
        return []
    spec = load_spec(path)
    done = [r for r in rows if r.get("status") == "completed"]
    if spec.kind == "kfold" and done:
        head = quality(done[0])[0]
        q = (done[0].get("report") or {}).get("quality") or {"key": "val_accuracy"}
        stats = mean_std([r.get(q["key"]) for r in done])
        if stats is None:
            return []
        pct = q.get("format", "pct") == "pct"
        text = (f"{100 * stats[0]:.1f} ± {100 * stats[1]:.1f} %" if pct
                else f"{stats[0]:.4g} ± {stats[1]:.2g}")  # fmt: skip
        return [f"{head} over {len(done)} of {len(rows)} folds: {text} (mean ± std)"]
    if spec.optimize is not None:
        scored = [r for r in rows if r.get("value") is not None]
        if not scored:
            return []
        sign = 1 if spec.optimize.direction == "maximize" else -1
        top = max(scored, key=lambda r: sign * r["value"])
        point = params_text(top.get("params", {}))
        return [f"best of {len(scored)} trials: {top['label']} {point}: "
                f"{spec.optimize.objective} {top['value']:.4g}"]  # fmt: skip
    return []


def print_summary(s: dict, folder: Path) -> None:
    def fmt(value: object, spec: str = ".1f", unit: str = "") -> str:
        return "-" if value is None else f"{value:{spec}}{unit}"

    table = Table(box=box.SIMPLE_HEAD, title=f"{folder}: {s['status']}", title_justify="left")
    unit = s.get("sample_unit") or "samples"
    for col in ("ranks", "DLT", "TTL", "epochs/min", f"{unit}/s", quality(s)[0], "stop"):
        table.add_column(col)
    table.add_row(
        str(s["world_size"]),
        duration_text(s.get("dlt_s")),
        duration_text(s.get("ttl_s")),
        fmt(s.get("epoch_rate_per_min"), ".2f"),
        fmt(s.get("samples_per_s", s.get("images_per_s"))),
        quality(s)[1],
        str(s.get("stop_reason")),
    )
    out.print(table)
    for line in timing_lines(s) + pipeline_lines(s):
        out.print(line)
    if s.get("confusion_percent"):
        from hpcscale.data.simulate import LABELS  # imports numpy: not at `hpcscale --help`

        cm = Table(
            box=box.SIMPLE_HEAD,
            title="confusion (%; rows true, columns predicted)",
            title_justify="left",
        )
        cm.add_column("")
        for label in LABELS:
            cm.add_column(label, justify="right")
        for label, row in zip(LABELS, s["confusion_percent"], strict=True):
            cm.add_row(label, *(f"{v:.1f}" for v in row))
        out.print(cm)
    if s.get("ttl_s") is None and s["status"] == "completed":
        out.print(ttl_unset_reason(s))
    first = s.get("failure") or {}
    for failure in s.get("failures", []):
        if failure.get("peer") and failure is not first and first.get("rank") != failure["rank"]:
            reason = f"stopped when rank {first.get('rank')} failed ({cut(failure['reason'], 60)})"
        else:
            reason = failure["reason"]
        print(f"rank {failure['rank']} failed: {one_line(reason)}", file=sys.stderr)


def timing_lines(s: dict) -> list[str]:
    """DLT's parts (the start-up timeline of the slowest rank) and the steady state beside the
    wall-clock throughput, in words."""
    lines = []
    parts = s.get("dlt_parts_s") or {}
    if parts:
        load = (s.get("data") or {}).get("load_s_rank")
        order = [p for p in DLT_PARTS.values() if p in parts]
        text = {k: duration_text(parts[k]) for k in order}
        if "staging" in text and load is not None:
            text["staging"] += f" (loading {duration_text(load)})"
        lines.append("DLT: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in text.items()))
    if s.get("steady_step_s"):
        unit = s.get("sample_unit") or "samples"
        line = f"steady state: {1e3 * s['steady_step_s']:.1f} ms per step"
        if s.get("samples_per_s_steady") is not None:  # None: a job cut short of its metrics
            line += f", {s['samples_per_s_steady']:.1f} {unit}/s"
        if s.get("samples_per_s"):
            line += f" (wall clock, first step and all: {s['samples_per_s']:.1f})"
        if s.get("ttl_train_s") is not None:
            line += f"; TTL of the training phase {duration_text(s['ttl_train_s'])}"
        lines.append(line)
    return lines


def pipeline_lines(s: dict) -> list[str]:
    """A model-parallel job's stages (``--model-parallel``): the cut, each stage's compute per
    step, its idle (bubble) fraction, the bytes it sends and its device's peak memory."""
    p = s.get("pipeline")
    if not p:
        return []
    lines = [
        f"pipeline: {p['stages']} stages × {plural(p['groups'], 'data-parallel group')} "
        f"({p['devices']} devices), {p['schedule']}, {p['micro_batches']} micro-batches, cut "
        f"after {', '.join(p['cuts'])}; bubble {100 * p['bubble_fraction']:.0f} %, "
        f"{_bytes_text(p['activation_bytes_per_step'])} of activations and "
        f"{_bytes_text(p['gradient_bytes_per_step'])} of their gradients sent per step"
    ]
    for st in p["per_stage"]:
        peak = st.get("peak_memory_gib")
        memory = (
            f"peak {peak:.2f} GiB on the device"
            if peak is not None
            else f"peak RSS {st.get('peak_rss_gib') or 0:.2f} GiB"
        )
        lines.append(
            f"  stage {st['stage']} ({'+'.join(st['parts']) or '-'}, "
            f"{params_text_count(st['parameters'])} parameters): compute "
            f"{1e3 * st['stage_compute_s']:.1f} ms of {1e3 * st['pipeline_s']:.1f} ms per step, "
            f"bubble {100 * st['bubble_fraction']:.0f} %, sends "
            f"{_bytes_text(st['activation_bytes'] + st['gradient_bytes'])}, {memory}"
        )
    return lines


def params_text_count(n: int) -> str:
    return f"{n / 1e6:.2f} M" if n >= 10**6 else f"{n / 1e3:.1f} k" if n >= 1000 else str(n)


def _bytes_text(n: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"


def ttl_unset_reason(s: dict) -> str:
    """Why a completed job has no TTL: the window never filled, or the loss stayed above."""
    steps, window = s.get("steps"), s.get("ttl_window")
    if s.get("final_smoothed_loss") is None and steps is not None and window:
        return (
            f"TTL not set: the job ran {plural(steps, 'step')}, fewer than the {window} that "
            "--ttl-window smooths the loss over; use more events or --epochs, or a smaller "
            "--ttl-window"
        )
    smoothed = s.get("final_smoothed_loss")
    end = "-" if smoothed is None else f"{smoothed:.3f}"
    return (
        f"TTL not set: target loss {s.get('target_loss')} not reached (smoothed loss at the "
        f"end: {end}); train longer (--epochs) or raise --target-loss"
    )


def gpu_text(gpus: Gpus | None, short: bool = False) -> str:
    if gpus is None:
        return "-"
    model = gpus.model.removeprefix("NVIDIA ").removeprefix("Tesla ")
    if short:
        return f"{gpus.count}×{model.split('-')[0]}"
    return f"{gpus.count} × {model} ({gpus.memory_gb:g} GB, {gpus.link})"
