"""What every container runtime shares: the Python a rank runs inside an image, the folders bound
into it, the image's recorded digest, and switching a site's container on or off. What differs
by runtime (its command, wrapper template, image formats, refusals) is its own module in
``hpcscale.containers.runtimes``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from hpcscale.containers.runtimes.registry import get
from hpcscale.errors import UserError
from hpcscale.sites.refusals import refuse

if TYPE_CHECKING:
    from hpcscale.sites.models import Container, Site

# Inside an image the rank runs the image's Python (first on the image's PATH), not the
# interpreter that submitted the job.
IMAGE_PYTHON = "python3"


def command(runtime: str) -> str | None:
    """The executable that wraps a rank in ``runtime`` (None for none)."""
    return get(runtime).command


def refusals(container: Container) -> list[str]:
    """What the container's runtime cannot honour in it, one line each."""
    return get(container.runtime).refusals(container)


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
    where = "--image" if image is not None else "container.image"
    return refuse(site.model_copy(update={"container": container}), where)


def _checked(
    container: Container,
    path: str | None,
    option: str | None,
    absolute: Callable[[str | None], str | None],
) -> Container:
    from pydantic import ValidationError

    from hpcscale.messages import describe
    from hpcscale.sites.models import Container

    try:
        checked = Container.model_validate({**container.model_dump(), "image": path})
    except ValidationError as exc:
        raise UserError(f"{option or 'container.image'}: {describe(exc, Container)}") from None
    if get(checked.runtime).local_image and path and "://" not in path:  # a path, not a reference
        return checked.model_copy(update={"image": absolute(path)})
    return checked
