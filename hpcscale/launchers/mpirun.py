"""mpirun of the site's MPI: Open MPI (and Spectrum) maps ranks with --map-by ppr and exports
the job's variables with -x; Hydra-based MPIs (Intel, MPICH, Cray) take -ppn."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hpcscale.launchers.base import Launcher

if TYPE_CHECKING:
    from hpcscale.sites.models import Site


class Mpirun(Launcher):
    name = "mpirun"
    schedulers = frozenset({"slurm", "lsf", "pbs", "torque"})

    def refusals(self, site: Site) -> list[str]:
        if site.launcher.mpi is None:
            return [
                "launcher.mpi is required with mpirun (openmpi, intel, mpich, spectrum or "
                "cray): Open MPI and Hydra take different per-node options"
            ]
        return []


LAUNCHER = Mpirun()
