"""What every container runtime provides: its wrapper template, the command that must be on
PATH, the image formats it runs (which builders make one), and what in a descriptor's
``container`` block it cannot honour.

The wrapper (``templates/containers/<name>.j2``) goes between the launcher and each rank's
command; ``prepare`` (``<name>.prepare.j2``), where a runtime has one, runs once before the
launcher. One module per runtime, one line in ``registry.RUNTIMES``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from hpcscale.sites.models import Container

# Builders (``hpcscale container build``) by the format they make: a SIF file, or an image in
# a Docker-format store (which shifter and sarus pull from a registry).
SIF_BUILDERS = ("apptainer", "singularity")
ANY_BUILDER = ("docker", "podman", "apptainer", "singularity")


class Runtime:
    """One container runtime. Subclasses set the class attributes and override what differs."""

    name: ClassVar[str]  # registry key and the descriptor's container.runtime
    command: ClassVar[str | None] = None  # the executable that wraps a rank
    # The image is a file or folder on this machine (made absolute: ranks start elsewhere),
    # not a registry reference.
    local_image: ClassVar[bool] = False
    # Builders whose images it runs, the preferred first (``hpcscale container build``).
    builders: ClassVar[tuple[str, ...]] = ANY_BUILDER
    has_prepare: ClassVar[bool] = False  # a prepare template runs once before the launcher
    # A variable the runtime sets inside its containers (a rank's provenance says where it ran).
    inside_variable: ClassVar[str | None] = None

    @property
    def template(self) -> str:
        return f"containers/{self.name}.j2"

    @property
    def prepare(self) -> str | None:
        return f"containers/{self.name}.prepare.j2" if self.has_prepare else None

    def refusals(self, container: Container) -> list[str]:
        """One message per thing in ``container`` this runtime cannot honour (empty: none)."""
        return []
