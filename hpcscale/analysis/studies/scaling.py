"""A scaling study: one job per size. The report's scaling tables and fits are all it has."""

from __future__ import annotations

from hpcscale.analysis.studies.base import StudyKind


class Scaling(StudyKind):
    name = "scaling"


KIND = Scaling()
