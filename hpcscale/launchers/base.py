"""What every launcher provides: its template, the schedulers it starts ranks under, what in a
descriptor it cannot honour, and the MPI its ranks' image is built with.

A launcher writes one line of the job script (``templates/launchers/<name>.j2``), the command
that starts the ranks; each rank's command (inside the container wrapper, if any) follows it.
One module per launcher, one line in ``registry.LAUNCHERS``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from hpcscale.sites.models import Site


class Launcher:
    """One launcher. Subclasses set the class attributes and override what differs."""

    name: ClassVar[str]  # registry key and the descriptor's launcher.kind
    # Scheduler backends (``hpcscale.schedulers.registry``) it starts ranks under.
    schedulers: ClassVar[frozenset[str]] = frozenset()
    # One launcher per node, started through the scheduler's node list (nodes/<backend>.j2),
    # when the job has several nodes (torchrun); else one launcher for all ranks.
    per_node: ClassVar[bool] = False
    # Its ranks are the tasks of an srun step (each with its SLURM_PROCID): submitit's own Slurm
    # job environment can read them; other launchers' ranks are read by hpcscale's.
    slurm_tasks: ClassVar[bool] = False
    # It asks for resource sets of its own (jsrun under LSF: the job asks for whole nodes,
    # -nnodes, and the launcher places ranks, CPUs and GPUs on them).
    resource_sets: ClassVar[bool] = False
    mpi: ClassVar[str] = "openmpi"  # the image's MPI when launcher.mpi is not set

    @property
    def template(self) -> str:
        return f"launchers/{self.name}.j2"

    def refusals(self, site: Site) -> list[str]:
        """One message per thing in the descriptor this launcher cannot honour (empty: none).
        Whether it works under the site's scheduler (``schedulers``) is checked beside it, by
        ``hpcscale.sites.refusals``, which knows every launcher."""
        return []

    def image_mpi(self, site: Site) -> str:
        """The MPI flavour a cluster image is built with for ranks this launcher starts, when
        the descriptor does not say (``launcher.mpi``)."""
        return self.mpi
