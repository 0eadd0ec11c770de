"""JobEnvironment: the only place that reads scheduler and launcher variables.

Every launcher tells a rank who it is in its own words. The order below matters: inside a batch
job, the batch step's SLURM_PROCID=0 leaks into processes started by mpirun or ibrun, so the
launcher-specific variables are read before Slurm's, and Slurm's only inside an srun step.
The job script exports HPCSCALE_WORLD_SIZE and HPCSCALE_RANKS_PER_NODE as a fallback for launchers
that give a rank but not the size (aprun).
"""

from __future__ import annotations

import os
import socket
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# submitit's parser of Slurm's compressed host lists ("nid[0001-0004,0010]").
from submitit.slurm.slurm import _parse_node_list

DEFAULT_PORT = 29500

# (launcher, rank, size, local rank) variable names, most specific first.
_SOURCES: tuple[tuple[str, str, str, str | None], ...] = (
    ("torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK"),
    ("horovodrun", "HOROVOD_RANK", "HOROVOD_SIZE", "HOROVOD_LOCAL_RANK"),
    (
        "submitit-local",
        "SUBMITIT_LOCAL_GLOBALID",
        "SUBMITIT_LOCAL_NTASKS",
        "SUBMITIT_LOCAL_LOCALID",
    ),
    ("jsrun", "JSM_NAMESPACE_RANK", "JSM_NAMESPACE_SIZE", "JSM_NAMESPACE_LOCAL_RANK"),
    ("openmpi", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"),
    ("pmix", "PMIX_RANK", "PMIX_SIZE", "PMIX_LOCAL_RANK"),
    ("pmi", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID"),
    ("aprun", "ALPS_APP_PE", "HPCSCALE_WORLD_SIZE", None),
    ("srun", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"),
)


@dataclass(frozen=True)
class JobEnvironment:
    launcher: str
    rank: int
    world_size: int
    local_rank: int
    master_addr: str
    master_port: int
    job_id: str | None
    nodes: tuple[str, ...]


def detect(env: Mapping[str, str] | None = None) -> JobEnvironment:
    """Read rank, size, local rank and the rendezvous address from ``env`` (os.environ)."""
    env = os.environ if env is None else env
    launcher, rank, size, local = "single", 0, 1, 0
    for name, rank_var, size_var, local_var in _SOURCES:
        if rank_var not in env:
            continue
        if name == "srun" and "SLURM_STEP_ID" not in env:
            continue  # the batch script itself, not a task of an srun step
        if name == "torchrun" and "LOCAL_RANK" not in env:
            continue
        size_text = env.get(size_var) or env.get("PMI_SIZE") or env.get("HPCSCALE_WORLD_SIZE")
        if size_text is None:
            raise RuntimeError(f"{rank_var} is set but not the world size ({size_var})")
        launcher, rank, size = name, int(env[rank_var]), int(size_text)
        if local_var and local_var in env:
            local = int(env[local_var])
        else:
            per_node = int(env.get("HPCSCALE_RANKS_PER_NODE", size))
            local = rank % max(per_node, 1)
        break
    nodes = _allocation_nodes(env)
    job_id = next(
        (
            env[v]
            for v in ("SLURM_JOB_ID", "LSB_JOBID", "PBS_JOBID", "SUBMITIT_LOCAL_JOB_ID")
            if v in env
        ),
        None,
    )
    addr = env.get("MASTER_ADDR") or (nodes[0] if nodes else None)
    if addr is None:
        one_host = size == 1 or launcher in ("torchrun", "submitit")
        addr = "127.0.0.1" if one_host else socket.gethostname()
    port = int(env.get("MASTER_PORT") or _port_for(job_id))
    return JobEnvironment(launcher, rank, size, local, addr, port, job_id, tuple(nodes))


def _allocation_nodes(env: Mapping[str, str]) -> list[str]:
    """The allocation's hosts, first one first (the rendezvous host)."""
    if "SLURM_JOB_NODELIST" in env or "SLURM_NODELIST" in env:
        return _parse_node_list(env.get("SLURM_JOB_NODELIST") or env["SLURM_NODELIST"])
    if "LSB_MCPU_HOSTS" in env:
        # "launch 1 h41n01 42 h41n02 42": host/slot pairs; on CSM systems the first is the
        # launch node, which runs no rank.
        hosts = env["LSB_MCPU_HOSTS"].split()[::2]
        return hosts[1:] if len(hosts) > 1 else hosts
    if "PBS_NODEFILE" in env and Path(env["PBS_NODEFILE"]).is_file():
        seen: dict[str, None] = {}
        for line in Path(env["PBS_NODEFILE"]).read_text().split():
            seen.setdefault(line)
        return list(seen)
    return []


def _port_for(job_id: str | None) -> int:
    """A port derived from the job id, so two jobs sharing a node do not collide; kept in
    29500-32499, below Linux's ephemeral ports (32768 and up by default), which any process's
    outgoing connections take: a derived port there was seen in use (EADDRINUSE) under load."""
    if job_id is None:
        return DEFAULT_PORT
    return DEFAULT_PORT + zlib.crc32(job_id.encode()) % 3000
