"""Horovod's own launcher: ``horovodrun -np N -H host:slots,... COMMAND`` starts the N ranks
(over Gloo and ssh, or through the MPI Horovod was built with) and gives each its rank and size
(HOROVOD_RANK, HOROVOD_SIZE, ...). On one node the hosts are ``localhost:N``; under Slurm, the
allocation's hosts (``scontrol show hostnames``) with the plan's ranks per node each, from the
batch script on the first node (the other nodes must accept ssh from it, as horovodrun needs).
It starts Horovod's ranks only: engine horovod."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hpcscale.launchers.base import Launcher

if TYPE_CHECKING:
    from hpcscale.sites.models import Site


class Horovodrun(Launcher):
    name = "horovodrun"
    schedulers = frozenset({"slurm", "local"})

    def refusals(self, site: Site) -> list[str]:
        if site.engine != "horovod":
            return [
                f"launcher.kind 'horovodrun' starts Horovod's ranks only, not engine "
                f"{site.engine!r}; set engine: horovod, or pick another launcher"
            ]
        return []


LAUNCHER = Horovodrun()
