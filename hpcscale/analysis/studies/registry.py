"""Every kind of study, by name (a study's ``kind``: ``spec.StudySpec.kind``): one module each
(``hpcscale.analysis.studies.<name>`` defines ``KIND``), loaded when first asked for. A new kind
is one module and one line in ``STUDY_KINDS`` (the idiom: ``hpcscale.registry``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hpcscale.registry import Registry

if TYPE_CHECKING:
    from hpcscale.analysis.studies.base import StudyKind

STUDY_KINDS: Registry[StudyKind] = Registry(
    "study kind",
    {
        "scaling": "hpcscale.analysis.studies.scaling",
        "sweep": "hpcscale.analysis.studies.sweep",
        "kfold": "hpcscale.analysis.studies.kfold",
        "optimize": "hpcscale.analysis.studies.optimize",
    },
    attr="KIND",
    field="kind",
)


def names() -> tuple[str, ...]:
    return STUDY_KINDS.names()


def get(name: str) -> StudyKind:
    return STUDY_KINDS.get(name)
