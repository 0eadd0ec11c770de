"""PyTorch's torchrun: one per node, started through the scheduler's own node list
(``templates/nodes/<backend>.j2``) when the job has several nodes; rendezvous on the first."""

from __future__ import annotations

from hpcscale.launchers.base import Launcher


class Torchrun(Launcher):
    name = "torchrun"
    schedulers = frozenset({"slurm", "lsf", "pbs", "torque", "local"})
    per_node = True


LAUNCHER = Torchrun()
