"""K-fold cross-validation: one job per fold; its section is a table per fold with mean ±
standard deviation (per class where the summaries have a confusion matrix)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hpcscale.analysis import kinds
from hpcscale.analysis.studies.base import Block, StudyKind


class KFold(StudyKind):
    name = "kfold"

    def section(self, r: dict[str, Any], out: Path, tag: str) -> list[Block]:
        return kinds.kfold_section(r)


KIND = KFold()
