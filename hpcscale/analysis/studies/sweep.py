"""A sweep: one job per size and swept value; its section is a table and plots of time per
epoch and the validation figure against the swept values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hpcscale.analysis import kinds
from hpcscale.analysis.studies.base import Block, StudyKind


class Sweep(StudyKind):
    name = "sweep"

    def section(self, r: dict[str, Any], out: Path, tag: str) -> list[Block]:
        return kinds.sweep_section(r, out, tag)


KIND = Sweep()
