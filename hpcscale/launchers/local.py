"""This machine: ``hpcscale run`` starts its ranks with torch.distributed.run (submitit's local
executor starts them for a submitted job)."""

from __future__ import annotations

from hpcscale.launchers.base import Launcher


class Local(Launcher):
    name = "local"
    schedulers = frozenset({"local"})


LAUNCHER = Local()
