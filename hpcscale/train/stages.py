"""The shape of model parallelism (``--model-parallel K``), checked before any rank starts.

Pure functions of the options and the workload class (no torch): where the model is cut into
``K`` stages (``--stage-cuts``, else evenly over the workload's ``cut_points``) and how many
micro-batches a minibatch becomes (``--micro-batches``). ``config.parse`` calls ``check`` for
every rank's options, so ``hpcscale run``/``submit``/``render`` refuse a bad shape in one line
and the ranks never see one. ``train/pipeline.py`` runs the stages.
"""

from __future__ import annotations

from typing import Any

from hpcscale.errors import UserError


def cuts(model: str, workload: Any, k: int, asked: str | None) -> tuple[str, ...]:
    """The ``k - 1`` cut points (names from ``workload.cut_points``, in model order) that make
    ``k`` stages: ``asked`` (comma-separated), else spread evenly over the model's parts."""
    points: tuple[str, ...] = tuple(workload.cut_points)
    if not points:
        raise UserError(
            f"--model-parallel {k}: model {model} cannot be split into stages: "
            f"{workload.cut_refusal}"
        )
    parts = len(points) + 1
    if k > parts:
        raise UserError(
            f"--model-parallel {k}: model {model} can be cut into at most {parts} stages "
            f"(cut points: {', '.join(points)})"
        )
    if asked is None:
        return tuple(points[round(i * parts / k) - 1] for i in range(1, k))
    chosen = tuple(asked.split(","))
    unknown = [c for c in chosen if c not in points]
    if unknown:
        raise UserError(
            f"--stage-cuts {asked}: {unknown[0]!r} is not a cut point of {model}; "
            f"choose from {', '.join(points)}"
        )
    if len(chosen) != k - 1:
        raise UserError(
            f"--stage-cuts {asked}: {k} stages need {k - 1} cut point(s), not {len(chosen)}"
        )
    index = [points.index(c) for c in chosen]
    if index != sorted(set(index)):
        raise UserError(
            f"--stage-cuts {asked}: give each cut point once, in model order ({', '.join(points)})"
        )
    return chosen


def micro_batches(batch: int, k: int, asked: int | None, schedule: str) -> int:
    """Micro-batches per minibatch: ``asked``, else the smallest divisor of the minibatch that
    is at least ``k`` (all of equal size, so the pipeline's mean loss is the minibatch's)."""
    if asked is not None:
        if batch % asked:
            raise UserError(
                f"--micro-batches {asked} does not divide the minibatch of {batch}; "
                f"choose a divisor of {batch}"
            )
        m = asked
    else:
        m = next((d for d in range(k, batch + 1) if batch % d == 0), batch)
    if schedule == "1f1b" and m < k:
        raise UserError(
            f"--pipeline-schedule 1f1b needs at least one micro-batch per stage: {m} "
            f"micro-batch(es) for {k} stages; use a minibatch of {k} or more "
            "(--batch) or --pipeline-schedule gpipe"
        )
    return m


def check(core: Any, workload: Any, batch: int) -> None:
    """Refuse (one line) a model-parallel shape the model or the minibatch cannot take."""
    k = core.model_parallel
    if k == 1:
        return
    cuts(core.model, workload, k, core.stage_cuts)
    micro_batches(batch, k, core.micro_batches, core.pipeline_schedule)
