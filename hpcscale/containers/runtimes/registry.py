"""Every container runtime, by name: one module each (``hpcscale.containers.runtimes.<name>``
defines ``RUNTIME``), loaded when first asked for. A new runtime is one module, its wrapper
template (``templates/containers/<name>.j2``) and one line in ``RUNTIMES`` (the idiom:
``hpcscale.registry``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hpcscale.registry import Registry

if TYPE_CHECKING:
    from hpcscale.containers.runtimes.base import Runtime
    from hpcscale.sites.models import Site

RUNTIMES: Registry[Runtime] = Registry(
    "container runtime",
    {
        "apptainer": "hpcscale.containers.runtimes.apptainer",
        "singularity": "hpcscale.containers.runtimes.singularity",
        "shifter": "hpcscale.containers.runtimes.shifter",
        "sarus": "hpcscale.containers.runtimes.sarus",
        "charliecloud": "hpcscale.containers.runtimes.charliecloud",
        "none": "hpcscale.containers.runtimes.none",
    },
    attr="RUNTIME",
    field="container.runtime",
)


def names() -> tuple[str, ...]:
    return RUNTIMES.names()


def get(name: str) -> Runtime:
    return RUNTIMES.get(name)


def for_site(site: Site) -> Runtime:
    return get(site.container.runtime)
