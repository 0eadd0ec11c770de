"""An optimisation (hpcscale optimize): one job per trial; its section is the trial
history, the best point and a figure-of-merit plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hpcscale.analysis import kinds
from hpcscale.analysis.studies.base import Block, StudyKind


class Optimize(StudyKind):
    name = "optimize"

    def section(self, r: dict[str, Any], out: Path, tag: str) -> list[Block]:
        return kinds.optimize_section(r, out, tag)


KIND = Optimize()
