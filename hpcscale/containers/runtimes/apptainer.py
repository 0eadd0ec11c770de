"""Apptainer: ``apptainer exec`` of a SIF image (or a sandbox folder) here; --nv on GPU jobs."""

from __future__ import annotations

from hpcscale.containers.runtimes.base import Runtime


class Apptainer(Runtime):
    name = "apptainer"
    inside_variable = "APPTAINER_CONTAINER"
    command = "apptainer"
    local_image = True
    builders = ("apptainer", "singularity")


RUNTIME = Apptainer()
