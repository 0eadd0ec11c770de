"""What every container runtime shares: the Python a rank runs inside an image, the folders bound
into it and the image's recorded digest (switching a site's container on or off: ``switch``).
What differs by runtime (its command, wrapper template, image formats, refusals) is its own
module in ``hpcscale.containers.runtimes``.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from hpcscale.containers.runtimes.registry import RUNTIMES, get

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


def runtime_inside(environ: Mapping[str, str]) -> str | None:
    """The runtime this process runs inside, from the variable each one sets there, or None."""
    for name in RUNTIMES:
        variable = RUNTIMES.get(name).inside_variable
        if variable and environ.get(variable):
            return name
    return None


def rank_python(site: Site) -> str | None:
    """The interpreter a rank's command names: the image's inside a container, else the
    descriptor's ``python`` (the compute nodes'), else None (the submitting interpreter)."""
    if site.container.enabled:
        return IMAGE_PYTHON
    return shlex.quote(site.python) if site.python else None


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
