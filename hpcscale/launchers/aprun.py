"""Cray ALPS's aprun (Titan): ranks, ranks per node and CPU depth; a rank learns its number
(ALPS_APP_PE) but not the world size, which the job script exports."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hpcscale.launchers.base import Launcher

if TYPE_CHECKING:
    from hpcscale.sites.models import Site


class Aprun(Launcher):
    name = "aprun"
    schedulers = frozenset({"pbs", "torque"})

    def image_mpi(self, site: Site) -> str:
        return "mpich" if site.network.lower().startswith("cray") else "openmpi"


LAUNCHER = Aprun()
