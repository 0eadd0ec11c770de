"""NERSC's Shifter: an image the site's image gateway pulled, by reference (--image=)."""

from __future__ import annotations

from hpcscale.containers.runtimes.base import Runtime


class Shifter(Runtime):
    name = "shifter"
    inside_variable = "SHIFTER_RUNTIME"
    command = "shifter"


RUNTIME = Shifter()
