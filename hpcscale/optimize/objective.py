"""The figure of merit a search optimises, checked against what the model's summaries hold
before any trial is submitted (a misspelt name found after the trials ran loses them)."""

from __future__ import annotations

import difflib

from hpcscale import workloads
from hpcscale.errors import UserError

# Numbers every job's summary.json holds, whatever it trains (train/loop.py, train/records.py).
CORE_FIGURES = (
    "dlt_s", "ttl_s", "ttl_train_s", "train_time_s", "epoch_rate_per_min",
    "epoch_rate_steady_per_min", "samples_per_s", "samples_per_s_per_rank",
    "samples_per_s_steady", "steady_step_s", "final_global_loss", "final_smoothed_loss",
    "steps", "epochs",
)  # fmt: skip


def check_objective(objective: str, model: str) -> None:
    """Refuse an objective that ``model``'s summaries cannot hold, in one line naming the
    allowed figures (a workload that does not list its figures is not checked)."""
    figures = workloads.get(model).figures  # imports the workload (torch): a search only
    if not figures:
        return
    allowed = [*figures, *CORE_FIGURES]
    if objective in allowed:
        return
    near = difflib.get_close_matches(objective, allowed, n=1, cutoff=0.5)
    hint = f"did you mean {near[0]}? " if near else ""
    raise UserError(
        f"--objective {objective!r}: {model}'s summaries have no such figure; {hint}"
        f"choose one of {', '.join(allowed)}"
    )
