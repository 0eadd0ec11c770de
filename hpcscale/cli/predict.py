"""``predict`` (figures at sizes a study did not run) and ``check`` (figures against references)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from hpcscale.cli.options import Site, SitesDir, size_flags, sizes
from hpcscale.errors import UserError
from hpcscale.sites.registry import load_site
from hpcscale.study import load


def predict(
    study_dir: Annotated[Path, typer.Argument(metavar="STUDY", help="A study folder.")],
    gpus: Annotated[str | None, typer.Option(help="GPU counts to predict, e.g. 8,64,192.")] = None,
    ranks: Annotated[str | None, typer.Option(help="Rank counts to predict.")] = None,
    nodes: Annotated[str | None, typer.Option(help="Node counts to predict.")] = None,
    site: Site = None,
    sites_dir: SitesDir = None,
    bench_ratio: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="A step's local time there ÷ here, from a benchmark run on "
            "both (instead of the ratio of GPU peaks).",
        ),
    ] = None,
    measured: Annotated[
        str | None,
        typer.Option(
            help="Predict from these measured sizes only, e.g. 1,2 (to hold the "
            "larger ones back for validation)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON for machines.")] = False,
) -> None:
    """Predicted DLT, step time, steps to the target, TTL, epoch rate and efficiency, with
    intervals, at sizes the study did not run (here or on --site)."""
    # numpy: only a prediction needs it, so `hpcscale --help` stays fast
    from hpcscale.analysis import predict as model
    from hpcscale.analysis.measured import measured_jobs

    given = size_flags(gpus=gpus, ranks=ranks, nodes=nodes)
    if not given:
        raise UserError("give the sizes to predict: --gpus, --ranks or --nodes (e.g. 8,64,192)")
    manifest = load(study_dir)
    jobs = measured_jobs(study_dir)
    if measured:
        keep = set(sizes(measured, "--measured"))
        jobs = [j for j in jobs if j.n in keep]
        if not jobs:
            raise UserError(f"--measured {measured}: the study has no completed job of those sizes")
    here = _site_or_none(manifest.site, sites_dir)
    there = load_site(site, sites_dir or []) if site else None
    gpu = _gpu_name(study_dir)
    target = model.make_target(study_dir, jobs, here, there, gpu, bench_ratio)
    ((kind, values),) = given.items()
    per_node = min(target.ranks_per_node, 1 << 10)
    targets = [v * per_node for v in values] if kind == "nodes" else values
    rows = model.predict(jobs, target, targets)
    notes = model.model_notes(jobs, target)
    where = there.name if there else manifest.site
    if as_json:
        out = {"study": str(study_dir), "site": where, **notes, "sizes": rows}
        print(json.dumps(out, indent=2))
        return
    print(prediction_text(str(study_dir), where, notes, rows))


def _site_or_none(name: str, sites_dir: list[Path] | None) -> Any:
    try:
        return load_site(name, sites_dir or [])
    except UserError:
        return None  # a site no longer known here: its figures are simply absent


def _gpu_name(study: Path) -> str | None:
    from hpcscale.study import collect

    return next((r["provenance"].get("gpu") for r in collect(study) if r.get("provenance")), None)


def _iv(value: float | None, interval: list[float] | None, fmt: str) -> str:
    if value is None:
        return "—"
    text = format(value, fmt)
    return f"{text} [{format(interval[0], fmt)}, {format(interval[1], fmt)}]" if interval else text


def prediction_text(study: str, site: str, notes: dict[str, Any], rows: list[dict]) -> str:
    lines = [
        f"prediction for {site} from {study} (measured sizes "
        f"{', '.join(map(str, notes['measured_sizes']))}; 95 % bootstrap intervals)",
        f"  compute per step: {notes['compute']}",
        f"  B_noise: {notes['b_noise']:.4g} ({notes['b_noise_source']})"
        if notes["b_noise"] is not None else f"  B_noise: {notes['b_noise_source'] or 'none'}",
    ]  # fmt: skip
    for r in rows:
        lines.append(
            f"N={r['n']} ({r['nodes']} node{'s' if r['nodes'] != 1 else ''}, "
            f"B={r['global_batch']}):"
            f" DLT {_iv(r['dlt_s'], r['dlt_s_interval'], '.3g')} s,"
            f" step {_iv(r['step_s'] * 1e3, _ms(r['step_s_interval']), '.4g')} ms"
            f" (allreduce {r['allreduce_s'] * 1e3:.3g} ms),"
            f" steps {_iv(r['steps'], r['steps_interval'], '.0f')},"
            f" TTL {_iv(r['ttl_s'], r['ttl_s_interval'], '.4g')} s,"
            f" epoch rate {_iv(r['epoch_rate_per_min'], r['epoch_rate_per_min_interval'], '.3g')}"
            f"/min, efficiency {_iv(r['efficiency'], r['efficiency_interval'], '.2f')}"
        )
        lines.append(f"  assumes: {r['assumption']}")
    return "\n".join(lines)


def _ms(interval: list[float] | None) -> list[float] | None:
    return [v * 1e3 for v in interval] if interval else None


def check(
    study_dir: Annotated[Path, typer.Argument(metavar="STUDY", help="A study folder.")],
    against: Annotated[
        Path | None, typer.Option(metavar="OTHER_STUDY", help="Another study as the reference.")
    ] = None,
    references: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="References (YAML: site → model → size → figure: "
            "[value, lower, upper], tolerances as fractions, as ReFrame's).",
        ),
    ] = None,
    predicted: Annotated[
        bool, typer.Option(help="Each size against its prediction from the smaller sizes.")
    ] = False,
    tolerance: Annotated[
        float, typer.Option(min=0.0, help="Relative tolerance for --against and --predicted.")
    ] = 0.10,
    sites_dir: SitesDir = None,
) -> None:
    """Each figure of the study against its reference (another study, a references file, the
    prediction, else the site descriptor's performance.references): one line per figure out
    of bounds and exit code 1; exit 0 when all are within."""
    from hpcscale.analysis import check as checks

    chosen = [x for x in (against, references, predicted or None) if x is not None]
    site, figures = checks.measured(study_dir)
    own = checks.descriptor_references(_site_or_none(site, sites_dir)) if not chosen else None
    if len(chosen) > 1 or (not chosen and own is None):
        raise UserError(
            "give one reference: --against OTHER_STUDY, --references FILE or --predicted (or "
            f"performance.references in site {site}'s descriptor)"
        )
    if own is not None:
        ref = own
    elif against is not None:
        load(against)  # a folder that is not a study: one line, exit 2
        ref = checks.against_study(against, tolerance)
    elif references is not None:
        ref = checks.references_file(references, site)
    else:
        ref = checks.against_prediction(study_dir, tolerance)
    bad, checked = checks.check(figures, ref)
    for line in bad:
        print(line)
    if not checked:
        raise UserError(f"{study_dir}: no figure of the study has a reference to check against")
    if bad:
        print(f"{len(bad)} of {checked} figures out of bounds", file=sys.stderr)
        raise typer.Exit(1)
    print(f"all {checked} figures within bounds")
