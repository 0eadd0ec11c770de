"""TACC's ibrun (Stampede2): takes the rank layout from Slurm's allocation; Intel MPI."""

from __future__ import annotations

from hpcscale.launchers.base import Launcher


class Ibrun(Launcher):
    name = "ibrun"
    schedulers = frozenset({"slurm"})
    mpi = "intel"


LAUNCHER = Ibrun()
