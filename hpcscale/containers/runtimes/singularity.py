"""Singularity: ``singularity exec`` of a SIF image (or a sandbox folder) here; --nv on GPU jobs."""

from __future__ import annotations

from hpcscale.containers.runtimes.base import Runtime


class Singularity(Runtime):
    name = "singularity"
    inside_variable = "SINGULARITY_CONTAINER"
    command = "singularity"
    local_image = True
    builders = ("singularity", "apptainer")


RUNTIME = Singularity()
