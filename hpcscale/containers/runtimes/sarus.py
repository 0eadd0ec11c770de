"""CSCS's Sarus (Piz Daint): ``sarus run`` of a pulled image, binds as --mount."""

from __future__ import annotations

from hpcscale.containers.runtimes.base import Runtime


class Sarus(Runtime):
    name = "sarus"
    command = "sarus"


RUNTIME = Sarus()
