"""Container runtimes: the command each one needs on the submitting machine, what a descriptor
asks of it that it cannot do (refused when the descriptor is validated), and the Python a rank
runs inside the image. The launch wrapper itself is a template: ``templates/containers/RUNTIME.j2``
(and ``RUNTIME.prepare.j2``, run once before the launcher where a runtime needs it).

This module imports nothing from hpcscale: the descriptor models call ``refusals``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hpcscale.sites.models import Container, Site

# The executable that wraps a rank, by ``container.runtime``.
COMMANDS = {
    "apptainer": "apptainer",
    "singularity": "singularity",
    "shifter": "shifter",
    "sarus": "sarus",
    "charliecloud": "ch-run",
}
# Inside an image the rank runs the image's Python (first on the image's PATH), not the
# interpreter that submitted the job.
IMAGE_PYTHON = "python3"
_REFERENCE = re.compile(r"^[A-Za-z0-9._/-]+:[A-Za-z0-9._-]+$")  # name:tag, a registry reference


def command(runtime: str) -> str | None:
    return COMMANDS.get(runtime)


def refusals(runtime: str, image: str | None, binds: list[str]) -> list[str]:
    """What ``runtime`` cannot honour in a descriptor's ``container`` block, one line each."""
    if runtime != "charliecloud":
        return []
    problems = []
    if image and ("://" in image or _REFERENCE.match(image)):
        problems.append(
            f"container.image {image!r}: charliecloud runs an image directory (ch-run takes a "
            "path, not a registry reference); build one with `hpcscale container build`, or "
            "`ch-image pull` and `ch-convert` it to a directory"
        )
    if image and image.rstrip("/").endswith((".sqfs", ".squashfs", ".sif", ".tar.gz", ".tar")):
        problems.append(
            f"container.image {image!r}: hpcscale runs charliecloud images as directories "
            "(ch-fromhost --nvidia writes the host's GPU libraries into them); convert it with "
            "`ch-convert IMAGE DIR`"
        )
    for bind in binds:
        if bind.count(":") > 1 or not bind or bind.startswith(":"):
            problems.append(
                f"container.binds entry {bind!r}: ch-run -b takes SRC or SRC:DST (no mount "
                "options such as :ro)"
            )
    return problems


def rank_python(site: Site) -> str | None:
    """The interpreter a rank's command names: the image's inside a container, else None (the
    submitting interpreter)."""
    return IMAGE_PYTHON if site.container.enabled else None


def with_binds(site: Site, paths: list[str]) -> Site:
    """``site`` with ``paths`` (absolute, without ``$``) bound into its container where no
    bind covers them yet: the study and data folders a rank must see. Apptainer binds the
    home and /tmp by itself; charliecloud binds only what it is told."""
    container = site.container
    if not container.enabled:
        return site
    binds = list(container.binds)
    for path in paths:
        if "$" in path or not path.startswith("/"):
            continue
        sources = [b.split(":")[0].rstrip("/") for b in binds]
        if not any(path == s or path.startswith(s + "/") for s in sources if s):
            binds.append(path)
    if binds == container.binds:
        return site
    return site.model_copy(update={"container": container.model_copy(update={"binds": binds})})


def recorded_digest(image: str) -> str | None:
    """The digest ``hpcscale container build`` recorded beside an image (``IMAGE.sha256``), if
    any; ``${NAME}`` in the path is expanded from this process's environment."""
    path = Path(os.path.expandvars(image).rstrip("/") + ".sha256")
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return text if re.fullmatch(r"sha256:[0-9a-f]{64}|[A-Za-z0-9:._-]{1,200}", text) else None


def switched(
    site: Site,
    enabled: bool | None,
    image: str | None,
    absolute: Callable[[str | None], str | None],
) -> Site:
    """``site`` with its container switched on or off (``--container``/``--no-container``) and
    ``--image`` for its image (which switches it on), validated again; an image path here (not
    a registry reference) goes through ``absolute``: ranks start elsewhere."""
    from hpcscale.errors import UserError

    if image is not None:
        if enabled is False:
            raise UserError("--image runs the ranks in a container; drop --no-container")
        enabled = True
    if enabled and site.container.runtime == "none":
        raise UserError(
            f"site {site.name} has no container runtime; set container.runtime and "
            "container.image in its descriptor"
        )
    container = site.container
    if enabled is not None:
        container = container.model_copy(update={"enabled": enabled})
    if container.enabled:
        path = image if image is not None else container.image
        container = _checked(container, path, "--image" if image is not None else None, absolute)
    if container == site.container:
        return site
    return site.model_copy(update={"container": container})


def _checked(
    container: Container,
    path: str | None,
    option: str | None,
    absolute: Callable[[str | None], str | None],
) -> Container:
    from pydantic import ValidationError

    from hpcscale.errors import UserError
    from hpcscale.messages import describe
    from hpcscale.sites.models import Container

    try:
        checked = Container.model_validate({**container.model_dump(), "image": path})
    except ValidationError as exc:
        raise UserError(f"{option or 'container.image'}: {describe(exc, Container)}") from None
    local_file = checked.runtime in ("apptainer", "singularity", "charliecloud")
    if local_file and path and "://" not in path:  # a file or folder here, not a reference
        return checked.model_copy(update={"image": absolute(path)})
    return checked
