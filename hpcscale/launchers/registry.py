"""Every launcher, by name: one module each (``hpcscale.launchers.<name>`` defines ``LAUNCHER``),
loaded when first asked for. A new launcher is one module, its template
(``templates/launchers/<name>.j2``) and one line in ``LAUNCHERS`` (the idiom:
``hpcscale.registry``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hpcscale.registry import Registry

if TYPE_CHECKING:
    from hpcscale.launchers.base import Launcher
    from hpcscale.sites.models import Site

LAUNCHERS: Registry[Launcher] = Registry(
    "launcher",
    {
        "srun": "hpcscale.launchers.srun",
        "jsrun": "hpcscale.launchers.jsrun",
        "mpirun": "hpcscale.launchers.mpirun",
        "ibrun": "hpcscale.launchers.ibrun",
        "aprun": "hpcscale.launchers.aprun",
        "torchrun": "hpcscale.launchers.torchrun",
        "local": "hpcscale.launchers.local",
        "horovodrun": "hpcscale.launchers.horovodrun",
    },
    attr="LAUNCHER",
    field="launcher.kind",
)


def names() -> tuple[str, ...]:
    return LAUNCHERS.names()


def get(name: str) -> Launcher:
    return LAUNCHERS.get(name)


def for_site(site: Site) -> Launcher:
    return get(site.launcher.kind)


def under(backend: str) -> list[str]:
    """The launchers that start ranks under the scheduler backend ``backend``, sorted."""
    return sorted(name for name in LAUNCHERS.names() if backend in get(name).schedulers)
