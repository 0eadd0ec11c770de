"""Charliecloud: ``ch-run`` of an image directory (``ch-image`` builds one); before the ranks
start, ``ch-fromhost --nvidia`` writes the host's GPU libraries into it (the prepare template).
ch-run takes a path, not a registry reference, and binds as SRC or SRC:DST only."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from hpcscale.containers.runtimes.base import Runtime

if TYPE_CHECKING:
    from hpcscale.sites.models import Container

REFERENCE = re.compile(r"^[A-Za-z0-9._/-]+:[A-Za-z0-9._-]+$")  # name:tag, a registry reference
ARCHIVES = (".sqfs", ".squashfs", ".sif", ".tar.gz", ".tar")


class Charliecloud(Runtime):
    name = "charliecloud"
    inside_variable = "CH_RUNNING"
    command = "ch-run"
    local_image = True
    builders = ("ch-image",)
    has_prepare = True

    def refusals(self, container: Container) -> list[str]:
        image, problems = container.image, []
        if image and ("://" in image or REFERENCE.match(image)):
            problems.append(
                f"container.image {image!r}: charliecloud runs an image directory (ch-run takes "
                "a path, not a registry reference); build one with `hpcscale container build`, "
                "or `ch-image pull` and `ch-convert` it to a directory"
            )
        if image and image.rstrip("/").endswith(ARCHIVES):
            problems.append(
                f"container.image {image!r}: hpcscale runs charliecloud images as directories "
                "(ch-fromhost --nvidia writes the host's GPU libraries into them); convert it "
                "with `ch-convert IMAGE DIR`"
            )
        for bind in container.binds:
            if bind.count(":") > 1 or not bind or bind.startswith(":"):
                problems.append(
                    f"container.binds entry {bind!r}: ch-run -b takes SRC or SRC:DST (no mount "
                    "options such as :ro)"
                )
        return problems


RUNTIME = Charliecloud()
