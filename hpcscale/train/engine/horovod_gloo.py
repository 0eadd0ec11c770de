"""Horovod's Gloo controller for ranks that a scheduler's launcher started (``srun``), not
``horovodrun``: what horovodrun does for Gloo, from the job environment.

horovodrun gives every rank its slot (``HOROVOD_RANK``, ``_SIZE``, ``_LOCAL_RANK``,
``_LOCAL_SIZE``, ``_CROSS_RANK``, ``_CROSS_SIZE``, ``_HOSTNAME``) and the address of its
rendezvous store, an HTTP key-value server. Here rank 0 serves that store on the first node of
the allocation, at the job's rendezvous port (``JobEnvironment.master_port``), and every rank
computes its slot from the node list the way horovodrun assigns them (block: ranks 0..k-1 on the
first node). A Horovod built with MPI needs none of this: under ``srun --mpi=…`` it reads its
ranks from MPI.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
from typing import Any

from hpcscale.train.jobenv import JobEnvironment


def needed(jobenv: JobEnvironment, mpi_built: bool) -> bool:
    """Whether this rank must set up Gloo itself: several ranks, started neither by horovodrun
    (which sets the slot variables) nor with MPI that Horovod could use."""
    return (
        jobenv.world_size > 1
        and jobenv.launcher != "horovodrun"
        and not (mpi_built and jobenv.launcher in ("openmpi", "pmix", "pmi"))
    )


# Launchers that start every rank on the machine they run on.
ONE_MACHINE = ("submitit-local", "torchrun")


def slots(jobenv: JobEnvironment) -> list[Any]:
    """Horovod's slot of every rank (its ``SlotInfo``s), from the allocation's node list: as many
    ranks on each node as on the first, the last node short if the count is uneven."""
    # horovod: optional, and only with --engine horovod
    from horovod.runner.common.util.hosts import get_host_assignments, parse_hosts

    if not jobenv.nodes and jobenv.launcher in ONE_MACHINE:
        # every rank on this machine (``hpcscale submit --site local``): one host, all slots
        hosts = f"localhost:{jobenv.world_size}"
        return get_host_assignments(parse_hosts(hosts), jobenv.world_size, jobenv.world_size)
    if not jobenv.nodes:
        raise RuntimeError(
            "engine horovod without horovodrun needs the allocation's node list "
            "(SLURM_JOB_NODELIST); start the ranks with srun, or with horovodrun"
        )
    per_node = math.ceil(jobenv.world_size / len(jobenv.nodes))
    hosts = ",".join(f"{node}:{per_node}" for node in jobenv.nodes)
    return get_host_assignments(parse_hosts(hosts), jobenv.world_size, jobenv.world_size)


def environment(jobenv: JobEnvironment, slot: Any, addr: str) -> dict[str, str]:
    """The variables horovodrun would give this rank (Gloo controller and operations)."""
    if slot.local_rank != jobenv.local_rank:
        raise RuntimeError(
            f"rank {jobenv.rank} is local rank {jobenv.local_rank} on its node, but Horovod's "
            f"block assignment makes it {slot.local_rank} on {slot.hostname}; start ranks "
            "with the launcher's block distribution"
        )
    return {
        "HOROVOD_HOSTNAME": slot.hostname,
        "HOROVOD_RANK": str(slot.rank),
        "HOROVOD_SIZE": str(slot.size),
        "HOROVOD_LOCAL_RANK": str(slot.local_rank),
        "HOROVOD_LOCAL_SIZE": str(slot.local_size),
        "HOROVOD_CROSS_RANK": str(slot.cross_rank),
        "HOROVOD_CROSS_SIZE": str(slot.cross_size),
        "HOROVOD_GLOO_RENDEZVOUS_ADDR": addr,
        "HOROVOD_GLOO_RENDEZVOUS_PORT": str(jobenv.master_port),
        "HOROVOD_CONTROLLER": "gloo",
        "HOROVOD_CPU_OPERATIONS": "gloo",
    }


def serve(port: int, plan: list[Any]) -> Any:
    """Rank 0: Horovod's rendezvous store on every address of this node, in a daemon thread.
    Returns the server (``shutdown()`` stops it)."""
    # horovod: optional, and only with --engine horovod
    from horovod.runner.http.http_server import RendezvousHandler, RendezvousHTTPServer

    server = RendezvousHTTPServer(("", port), RendezvousHandler, 0)
    server.init(plan)
    threading.Thread(target=server.serve_forever, daemon=True, name="hvd-rendezvous").start()
    return server


def wait_for(addr: str, port: int, timeout_s: float) -> None:
    """The other ranks: wait until rank 0's store takes connections (Horovod's client gives up
    on the first refused one)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection((addr, port), timeout=2).close()
            return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"Horovod's rendezvous store on rank 0 ({addr}:{port}) did not answer "
                    f"within {timeout_s:g} s: {exc}"
                ) from exc
            time.sleep(0.2)


def setup(jobenv: JobEnvironment, timeout_s: float) -> Any:
    """Set this rank's Horovod variables (and on rank 0 start the store); call before
    ``hvd.init()``. Returns rank 0's server, else None."""
    plan = slots(jobenv)
    addr = socket.gethostbyname(jobenv.master_addr)
    os.environ.update(environment(jobenv, plan[jobenv.rank], addr))
    if jobenv.rank == 0:
        return serve(jobenv.master_port, plan)
    wait_for(addr, jobenv.master_port, timeout_s)
    return None
