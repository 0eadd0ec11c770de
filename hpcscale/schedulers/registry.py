"""Every scheduler backend, by name: one module each, loaded when first asked for.

A backend module ``hpcscale.schedulers.<name>`` defines ``BACKEND`` (a ``base.Backend``). A new
scheduler is one module and one line in ``SCHEDULERS`` (the idiom: ``hpcscale.registry``). The
descriptor's ``scheduler.kind`` picks the backend; ``pbs`` splits on ``scheduler.pbs_flavor``
into ``pbs`` (PBS Pro) and ``torque`` (a backend no descriptor names as its kind).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hpcscale.registry import Registry

if TYPE_CHECKING:
    from hpcscale.schedulers.base import Backend
    from hpcscale.sites.models import Site

SCHEDULERS: Registry[Backend] = Registry(
    "scheduler",
    {
        "slurm": "hpcscale.schedulers.slurm",
        "lsf": "hpcscale.schedulers.lsf",
        "pbs": "hpcscale.schedulers.pbs",
        "torque": "hpcscale.schedulers.torque",
        "local": "hpcscale.schedulers.local",
    },
    attr="BACKEND",
    field="scheduler.kind",
)
# Backends chosen by a flavour of another kind, not by scheduler.kind itself.
FLAVOURS = {"torque": "pbs"}
BACKENDS = SCHEDULERS  # the name this table had before the registries were one idiom


def names() -> tuple[str, ...]:
    return SCHEDULERS.names()


def get(name: str) -> Backend:
    """The backend registered as ``name`` (a study manifest's ``scheduler``)."""
    return SCHEDULERS.get(name)


def for_site(site: Site) -> Backend:
    return get(site.scheduler.backend)


def refusals(site: Site) -> list[str]:
    """What the site's scheduler cannot honour in its descriptor (empty: all of it)."""
    return for_site(site).refusals(site)
