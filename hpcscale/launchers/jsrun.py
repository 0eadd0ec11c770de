"""IBM's jsrun (LSF on Summit-class machines): resource sets of ranks, CPUs and GPUs; the image
gets Open MPI (Spectrum MPI is Open MPI)."""

from __future__ import annotations

from hpcscale.launchers.base import Launcher


class Jsrun(Launcher):
    name = "jsrun"
    schedulers = frozenset({"lsf"})
    resource_sets = True


LAUNCHER = Jsrun()
