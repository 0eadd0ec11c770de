"""No container: the ranks run on the host's Python."""

from __future__ import annotations

from hpcscale.containers.runtimes.base import Runtime


class NoContainer(Runtime):
    name = "none"


RUNTIME = NoContainer()
