"""Slurm's srun: one step of all ranks; each rank is a task with its SLURM_PROCID."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hpcscale.launchers.base import Launcher

if TYPE_CHECKING:
    from hpcscale.sites.models import Site


class Srun(Launcher):
    name = "srun"
    schedulers = frozenset({"slurm"})
    slurm_tasks = True

    def image_mpi(self, site: Site) -> str:
        # Cray's MPI is MPICH-based; elsewhere srun starts Open MPI ranks through PMIx.
        return "mpich" if site.network.lower().startswith("cray") else "openmpi"


LAUNCHER = Srun()
