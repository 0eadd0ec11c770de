"""``hpcscale report``: tables, fits with intervals, plots and results.json for one or more studies.

The report is built as a list of blocks (heading, text, table, image) and written as Markdown or
HTML from the same blocks, so both formats always say the same thing.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hpcscale.analysis import attribution, document, kinds, master_worker, parallelism, plots
from hpcscale.analysis.fit import PowerLaw
from hpcscale.analysis.results import (
    PAPER,
    PAPER_WORKLOADS,
    file_tag,
    study_label,
    study_results,
    write_results,
)
from hpcscale.data.simulate import LABELS
from hpcscale.errors import UserError
from hpcscale.fmt import duration_text
from hpcscale.fsutil import atomic_write

Block = tuple[str, Any]


def build_report(studies: list[Path], out: Path, fmt: str = "md") -> Path:
    if fmt not in ("md", "html"):
        raise UserError(f"--format {fmt!r}: choose md or html")
    results = [study_results(s) for s in studies]
    _require_finished(results)
    # Built in a scratch folder beside ``out`` and moved in file by file at the end: a failure
    # (a full disk, a bad figure) leaves no half-written report and no empty folder behind.
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        write_results(results, scratch / "results.json")
        blocks: list[Block] = [
            ("h1", "hpcscale scaling report"),
            ("link", ("results.json", "results.json: every figure of this report, as data")),
        ]
        blocks += _overview(results)
        if any((r.get("kind") or "scaling") == "scaling" for r in results):
            blocks += _scaling_section(results, scratch)
        blocks += _versus_section(results, scratch)
        blocks += parallelism.section(results)
        blocks += master_worker.section(results, scratch)
        for result in results:
            blocks += _study_section(result, scratch)
        if any(r.get("workload") in PAPER_WORKLOADS for r in results):
            blocks += _paper_section()
        atomic_write(
            scratch / f"report.{fmt}",
            document.markdown(blocks) if fmt == "md" else document.html(blocks),
        )
        out.mkdir(exist_ok=True)
        for item in sorted(scratch.iterdir()):
            os.replace(item, out / item.name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return out / f"report.{fmt}"


def _require_finished(results: list[dict[str, Any]]) -> None:
    """Refuse to draw empty plots: at least one job must have completed; say what failed."""
    if any(j["status"] == "completed" for r in results for j in r["jobs"]):
        return
    failed = "; ".join(
        f"{r['folder']} job {m['label']}: {' '.join(str(m['reason']).split())}"
        for r in results
        for m in r["missing"]
    )
    raise UserError(f"no job has finished, nothing to report ({failed or 'no jobs'})")


def _fmt(value: Any, spec: str = ".1f", scale: float = 1.0, unit: str = "") -> str:
    return "–" if value is None else f"{value * scale:{spec}}{unit}"


def _declared(value: Any, spec: str, unit: str = "") -> str:
    """A value a workload's summary declares, in its declared format (as written, where the
    format does not fit the value)."""
    if value is None:
        return "–"
    try:
        return f"{value:{spec}}{unit}"
    except (TypeError, ValueError):
        return f"{value}{unit}"


def _law(d: dict | None) -> str:
    return "–" if d is None else PowerLaw(**d).text()


def _k(d: dict | None) -> str:
    """An exponent for a table cell: k, and its 95 % interval where there is one."""
    if d is None:
        return "–"
    law = PowerLaw(**d)
    return law.text() if law.ci_low is not None else f"{law.exponent:+.2f}"


def _versions(p: dict[str, Any]) -> str:
    """torch, CUDA and NCCL versions (those present) and the engine: 'torch 2.4.1, CUDA 12.4,
    NCCL 2.20.5; engine torch' or 'torch 2.13.0+cpu (no CUDA); engine horovod'."""
    parts = [f"torch {p.get('torch')}"]
    if p.get("cuda"):
        parts += [f"CUDA {p['cuda']}"] + ([f"NCCL {p['nccl']}"] if p.get("nccl") else [])
    else:
        parts[0] += " (no CUDA)"
    return ", ".join(parts) + f"; engine {p.get('engine') or '–'}"


def _overview(results: list[dict[str, Any]]) -> list[Block]:
    rows = []
    for r in results:
        p = r.get("provenance") or {}
        rows.append(
            [
                study_label(r).split(":")[0],
                r["site"],
                r.get("model") or "–",
                r.get("loss") or "–",
                r["site_digest"][:12],
                _versions(p),
                p.get("gpu") or p.get("device") or "–",
                (p.get("image_digest") or "none")[:19],
            ]
        )
    return [
        ("h2", "Studies and provenance"),
        (
            "table",
            (
                [
                    "study",
                    "site",
                    "model",
                    "loss",
                    "descriptor sha256",
                    "versions",
                    "device",
                    "image",
                ],
                rows,
            ),
        ),
    ]


def _scaling_section(results: list[dict[str, Any]], out: Path) -> list[Block]:
    rows = []
    for r in results:
        f = r["fits"]
        rows.append(
            [
                f"{r['site']} {r.get('model') or ''}".strip(),
                study_label(r).split(":")[0],
                _law(f.get("ttl")),
                _law(f.get("epoch_rate")),
                _law(f.get("dlt")),
                _bends(f),
            ]
        )
    j = PAPER["jishnet"]
    paper = any(r.get("workload") in PAPER_WORKLOADS for r in results)
    rows.append(
        [
            "paper: SummitDev JishNet",
            "32–192 GPUs",
            f"{j['alpha']:+.1f}",
            f"{j['beta']:+.1f}",
            "–",
            "–",
        ]
    )
    rows.append(
        [
            "paper: SummitDev SCNet",
            "32–192 GPUs",
            f"{PAPER['scnet']['alpha']:+.1f}",
            f"{PAPER['scnet']['beta']:+.1f}",
            "–",
            "–",
        ]
    )
    if not paper:  # the paper's rows are JishNet's and SCNet's, not another workload's
        rows = rows[:-2]
    blocks: list[Block] = [
        ("h2", "Scaling laws"),
        (
            "p",
            "Log-log least-squares fits y = c·N^k with 95 % confidence intervals on k "
            "(Student t, n − 2 degrees of freedom; three or more sizes). 'Power law bends' is "
            "yes where a quadratic term in log N is significant at 95 % (four or more sizes).",
        ),
        (
            "table",
            (
                [
                    "site, model",
                    "study",
                    "TTL ∝ N^α",
                    "epoch rate ∝ N^β",
                    "DLT ∝ N^k",
                    "power law bends",
                ],
                rows,
            ),
        ),
    ]
    for key, fit, name, label, ideal, paper in (
        ("ttl_s", "ttl", "ttl_vs_n.png", "TTL [s]", -1.0, "alpha"),
        (
            "epoch_rate_per_min",
            "epoch_rate",
            "epoch_rate_vs_n.png",
            "epochs per minute",
            1.0,
            "beta",
        ),
        ("dlt_s", "dlt", "dlt_vs_n.png", "DLT [s]", -1.0, None),
    ):
        if plots.scaling(results, key, fit, out / name, label, ideal, paper) is not None:
            blocks.append(("img", (name, f"{label} vs N")))
    return blocks


def _bends(fits: dict[str, Any]) -> str:
    known = {
        n: fits[n]["bends"]
        for n in ("ttl", "epoch_rate")
        if fits.get(n) and fits[n]["bends"] is not None
    }
    if not known:
        return "too few sizes"
    return ", ".join(n for n, bends in known.items() if bends) or "no"


def _study_section(r: dict[str, Any], out: Path) -> list[Block]:
    decl = r.get("report") or {}
    quality = decl.get("quality") or {"key": "val_accuracy", "label": "val acc", "format": "pct"}
    columns = decl.get("columns", [])
    rows = []
    named = (r.get("kind") or "scaling") != "scaling"  # jobs of one size: name each
    sizes = not named  # speed-ups compare sizes, never trials, points or folds
    for j in r["jobs"]:
        rows.append(
            [
                *([j["label"]] if named else []),
                str(j["n"]),
                str(j.get("nodes") or "–"),
                j["status"],
                duration_text(j.get("dlt_s")),
                duration_text(j.get("ttl_s")),
                _fmt(j.get("epoch_rate_per_min"), ".3f"),
                _fmt(j.get("samples_per_s")),
                *(
                    [_fmt(j.get("speedup"), ".2f"), _fmt(j.get("efficiency"), ".0f", 100, " %")]
                    if sizes
                    else []
                ),
                *[_declared(j.get(c["key"]), c["format"], c.get("unit", "")) for c in columns],
                _fmt(j.get(quality["key"]), ".1f", 100, " %")
                if quality["format"] == "pct"
                else _declared(j.get(quality["key"]), quality["format"]),
                j.get("stop_reason") or "–",
            ]
        )
    blocks: list[Block] = [
        ("h2", f"{study_label(r)} — study {r['study']}"),
        (
            "p",
            f"Folder {r['folder']}; TTL target {r.get('target_loss')} on the "
            f"{decl.get('loss_label') or (str(r.get('loss')) + ' loss')}"
            + (
                "; speed-up and efficiency from the epoch rate relative to the smallest "
                "completed N."
                if sizes
                else "."
            ),
        ),
        (
            "table",
            (
                [
                    *(["job"] if named else []),
                    "N",
                    "nodes",
                    "status",
                    "DLT",
                    "TTL",
                    "epochs/min",
                    f"{r.get('sample_unit') or 'samples'}/s",
                    *(["speed-up", "efficiency"] if sizes else []),
                    *[c["label"] for c in columns],
                    quality["label"],
                    "stop",
                ],
                rows,
            ),
        ),
    ]
    blocks += superlinear(r) if sizes else []
    blocks += [("p", f"Job {j['label']}: {j['rebuilt']}.") for j in r["jobs"] if j.get("rebuilt")]
    for miss in r["missing"]:
        blocks.append(("p", f"Job {miss['label']} did not complete: {miss['reason']}"))
    for label, n in (r.get("skipped_record_lines") or {}).items():
        blocks.append(
            ("p", f"Job {label}: {n} record line(s) were not valid JSON and were skipped.")
        )
    tag = file_tag(r)
    blocks += kinds.sections(r, out, tag)
    blocks += _timing_blocks(r)
    blocks += _efficiency_blocks(r, out)
    for name, maker in (
        (f"loss_{tag}.png", plots.loss_curves),
        (f"confusion_{tag}.png", plots.confusion),
        (f"time_split_{tag}.png", plots.time_split),
        (f"noise_{tag}.png", plots.noise_scale),
    ):
        if maker(r, out / name) is not None:
            blocks.append(("img", (name, name.split("_")[0])))
    blocks += _declared_figures(r, decl, tag, out)
    return blocks


def superlinear(r: dict[str, Any]) -> list[Block]:
    """A caveat for every speed-up above N's ratio (efficiency over 100 %): measured, but not
    what more ranks alone give; name the usual causes, so it is not read as a scaling win."""
    over = [j for j in r["jobs"] if (j.get("efficiency") or 0) > 1.05]
    if not over:
        return []
    jobs = ", ".join(f"N = {j['n']}: speed-up {j['speedup']:.2f}, efficiency "
                     f"{100 * j['efficiency']:.0f} %" for j in over)  # fmt: skip
    return [("p", f"Caveat: speed-up above N ({jobs}). More ranks alone cannot do this: the "
             "smallest job was slowed (its threads shared the cores, warm-up or start-up "
             "counted in its epoch rate), or each rank's smaller share fits in cache. Read the "
             "steady-state figures, and compare sizes that each have their cores to "
             "themselves.")]  # fmt: skip


def _declared_figures(r: dict[str, Any], decl: dict[str, Any], tag: str, out: Path) -> list:
    """The figures a workload's summary asks for: curves of its step metrics from the records
    (a GAN's two losses) and curves stored in its summary (a ROC curve)."""
    blocks: list[Block] = []
    for i, curve in enumerate(decl.get("curves", [])):
        name = f"curves{i}_{tag}.png"
        if plots.metric_curves(r, curve, out / name) is not None:
            blocks.append(("img", (name, curve.get("title", "curves"))))
    for i, xy in enumerate(decl.get("xy", [])):
        name = f"xy{i}_{tag}.png"
        if plots.xy_curves(r, xy, out / name) is not None:
            blocks.append(("img", (name, xy.get("title", xy["key"]))))
    return blocks


def _versus_section(results: list[dict[str, Any]], out: Path) -> list[Block]:
    """A figure against an option across every job of every study (the jets' ROC-AUC vs batch
    size), where a workload declares one: a table and a plot."""
    blocks: list[Block] = []
    seen: set[tuple[str, str]] = set()
    for r in results:
        for v in (r.get("report") or {}).get("versus", []):
            if (v["x"], v["y"]) in seen:
                continue
            seen.add((v["x"], v["y"]))
            xs = {str(j.get(v["x"])) for s in results for j in s["jobs"]
                  if j["status"] == "completed" and j.get(v["y"]) is not None}  # fmt: skip
            if len(xs) < 2:  # "vs batch size" needs more than one batch size
                continue
            rows = [
                [study_label(s), str(j["n"]), str(j.get(v["x"])), _fmt(j.get(v["y"]), ".3f"),
                 _fmt(j.get("epoch_minutes"), ".2f"), _fmt(j.get("io_s"), ".3f", 1.0, " s")]
                for s in results
                for j in s["jobs"]
                if j["status"] == "completed" and j.get(v["y"]) is not None
            ]  # fmt: skip
            name = f"versus_{v['x']}_{v['y']}.png"
            plots.versus(results, v, out / name)
            head = ["study", "N", v.get("xlabel", v["x"]), v.get("ylabel", v["y"])]
            blocks += [
                ("h2", v.get("title", f"{v['y']} vs {v['x']}")),
                ("table", ([*head, "train min/epoch", "I/O per batch"], rows)),
                ("img", (name, v.get("title", name))),
            ]
    return blocks


def _timing_blocks(r: dict[str, Any]) -> list[Block]:
    """Where DLT and TTL go: DLT's parts per job, the steady state beside the wall clock, and
    each part's exponent against N (a fixed cost has k ≈ 0; work shared by the ranks k ≈ −1)."""
    jobs = [j for j in r["jobs"] if j.get("dlt_parts_s")]
    if not jobs:
        return []
    unit = r.get("sample_unit") or "samples"
    parts = kinds.dlt_parts_present(jobs)
    rows = [
        [str(j["n"])]
        + [duration_text(j["dlt_parts_s"].get(p)) for p in parts]
        + [
            duration_text(j.get("ttl_train_s")),
            _fmt(j.get("steady_step_s"), ".1f", 1e3, " ms"),
            _fmt(j.get("samples_per_s_steady")),
            _fmt(j.get("samples_per_s")),
            _fmt(j.get("epoch_rate_steady_per_min"), ".3f"),
        ]
        for j in jobs
    ]
    names = [p.replace("_", " ") for p in parts]
    f = r["fits"]
    laws = [_k((f.get("dlt_parts") or {}).get(p)) for p in parts] + [
        _k(f.get("ttl_train")),
        "–",
        _k(f.get("samples_per_s_steady")),
        _k(f.get("samples_per_s")),
        _k(f.get("epoch_rate_steady")),
    ]
    return [
        (
            "p",
            "Where the time goes. DLT (process start → first loss) in the parts of its slowest "
            "rank's start-up: imports; device and communicator; placement (the data set copied "
            "to the node, --data-placement node-local, or found in the image, image: where a job "
            "did); staging the data; "
            "building the model and optimizer; the first step (cuDNN's algorithm search, "
            "compilation). TTL training is TTL minus DLT. Steady: from the median step time "
            "after warm-up; wall: over the whole training phase, first step included. The last "
            "row is each column's exponent k in y ∝ N^k (with its 95 % interval from three "
            "sizes on).",
        ),
        (
            "table",
            (
                [
                    "N",
                    *names,
                    "TTL training",
                    "steady step",
                    f"steady {unit}/s",
                    f"wall {unit}/s",
                    "steady epochs/min",
                ],
                [*rows, ["N^k", *laws]],
            ),
        ),
    ]


def _efficiency_blocks(r: dict[str, Any], out: Path) -> list[Block]:
    """Where efficiency went at each size, and each size as predicted from the smaller ones."""
    blocks: list[Block] = []
    repeats = attribution.repeat_rows(r)
    if repeats:
        text = ("Repeats: each figure's mean over the repeated jobs of a size, ± the half-width of "
                "its 95 % interval (1.96 standard errors), and its spread (standard deviation "
                "over the mean): how noisy this machine made it.")  # fmt: skip
        heads = ["N", "jobs", *[name for _, name, _ in attribution.NOISY]]
        blocks += [("p", text), ("table", (heads, repeats))]
    lines = attribution.efficiency_lines(r)
    if lines:
        blocks.append(("p", "Where efficiency went, per size against the smallest (ideal TTL: "
                       "the smallest size's, perfectly scaled): " + " ".join(
                           f"{line}." for line in lines)))  # fmt: skip
    points = attribution.predicted_points(r)
    rows = attribution.predicted_rows(points)
    if rows:
        text = ("Predicted beside measured: each size predicted (`hpcscale predict`) from the "
                "smaller sizes only, with the error of the prediction.")  # fmt: skip
        blocks.append(("p", text))
        heads = ["N", "from N", "TTL measured", "TTL predicted", "error", "epochs/min measured",
                 "epochs/min predicted", "error"]  # fmt: skip
        blocks.append(("table", (heads, rows)))
        name = f"predicted_{file_tag(r)}.png"
        plots.predicted(r, points, out / name)
        blocks.append(("img", (name, "predicted")))
    return blocks


def _paper_section() -> list[Block]:
    rows = [
        [LABELS[i], *(f"{v:.1f}" for v in row)]
        for i, row in enumerate(PAPER["jishnet_confusion_percent"])
    ]  # type: ignore[arg-type]
    return [
        ("h2", "Reference: the paper (SummitDev, JishNet, 128 GPUs, 4 h)"),
        (
            "p",
            "Validation accuracy 78.8 % ± 3.8 % (SCNet 76.8 % ± 3.3 %); epoch rate "
            "≈ 0.5–1.5 epochs/min over 32–192 GPUs; TTL to a loss of 1.2.",
        ),
        ("table", (["true \\ predicted (%)", *LABELS], rows)),
    ]
