"""What a valid descriptor asks that its scheduler, launcher or container runtime cannot do.

The descriptor models check each block on its own; whether the three axes (and the engine) can
honour it together is asked of their registries here, after validation: by the loader
(``registry.load_file``) and by every other place that changes a site (command-line requests,
``--container``/``--image``, a detected node). One line per problem, naming the field and what
is allowed.
"""

from __future__ import annotations

from hpcscale.containers.runtimes.registry import RUNTIMES
from hpcscale.errors import UserError
from hpcscale.launchers.registry import LAUNCHERS
from hpcscale.schedulers.registry import SCHEDULERS
from hpcscale.sites.models import Site


def refusals(site: Site) -> list[str]:
    """Every refusal of ``site`` by its scheduler, launcher and container runtime (empty: none)."""
    backend = SCHEDULERS.get(site.scheduler.backend)
    launcher = LAUNCHERS.get(site.launcher.kind)
    out = []
    if site.scheduler.backend not in launcher.schedulers:
        allowed = [n for n in LAUNCHERS if site.scheduler.backend in LAUNCHERS.get(n).schedulers]
        out.append(
            f"launcher.kind {launcher.name!r} cannot start ranks under {backend.label} "
            f"(scheduler.kind {site.scheduler.kind!r}); with {backend.label} use one of: "
            f"{', '.join(sorted(allowed))}"
        )
    out += launcher.refusals(site)
    out += backend.refusals(site)
    out += RUNTIMES.get(site.container.runtime).refusals(site.container)
    return out


def refuse(site: Site, where: str, error: type[UserError] = UserError) -> Site:
    """``site`` if nothing refuses it, else ``error`` as one line: ``where`` (the file, or the
    option that changed the site), then every refusal."""
    problems = refusals(site)
    if problems:
        raise error(f"{where}: {'; '.join(problems)}")
    return site
