"""What every study kind provides to the report: its own section (beyond the scaling tables
and fits every study gets), as blocks for ``hpcscale.analysis.report``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

Block = tuple[str, Any]


class StudyKind:
    name: ClassVar[str]  # registry key: the study's kind

    def section(self, r: dict[str, Any], out: Path, tag: str) -> list[Block]:
        """The kind's report blocks for the collected study ``r``; plots written into ``out``
        with ``tag`` in their names. None for a plain scaling study."""
        return []
