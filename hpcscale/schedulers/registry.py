"""Every scheduler backend, by name: one module each, loaded when first asked for.

A backend module ``hpcscale.schedulers.<name>`` defines ``BACKEND`` (a ``base.Backend``). A new
scheduler is one module and one line here. The descriptor's ``scheduler.kind`` picks the backend;
``pbs`` splits on ``scheduler.pbs_flavor`` into ``pbs`` (PBS Pro) and ``torque``.
"""

from __future__ import annotations

from functools import cache
from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hpcscale.schedulers.base import Backend
    from hpcscale.sites.models import Site

BACKENDS: dict[str, str] = {
    "slurm": "hpcscale.schedulers.slurm",
    "lsf": "hpcscale.schedulers.lsf",
    "pbs": "hpcscale.schedulers.pbs",
    "torque": "hpcscale.schedulers.torque",
    "local": "hpcscale.schedulers.local",
}


@cache
def get(name: str) -> Backend:
    """The backend registered as ``name`` (a study manifest's ``scheduler``)."""
    if name not in BACKENDS:
        raise KeyError(f"no scheduler backend {name!r}; known: {', '.join(BACKENDS)}")
    return import_module(BACKENDS[name]).BACKEND


def for_site(site: Site) -> Backend:
    return get(site.scheduler.backend)


def refusals(site: Site) -> list[str]:
    """What the site's scheduler cannot honour in its descriptor (empty: all of it)."""
    return for_site(site).refusals(site)
