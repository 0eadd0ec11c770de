"""JobEnvironment reads each launcher's own variables, in the right order."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpcscale.train.jobenv import DEFAULT_PORT, detect

CASES = {
    "srun": (
        {
            "SLURM_PROCID": "5",
            "SLURM_NTASKS": "8",
            "SLURM_LOCALID": "1",
            "SLURM_STEP_ID": "0",
            "SLURM_JOB_ID": "42",
            "SLURM_JOB_NODELIST": "nid[00010-00011]",
        },
        (5, 8, 1),
        "nid00010",
    ),
    "jsrun": (
        {
            "JSM_NAMESPACE_RANK": "6",
            "JSM_NAMESPACE_SIZE": "8",
            "JSM_NAMESPACE_LOCAL_RANK": "2",
            "LSB_JOBID": "7",
            "LSB_MCPU_HOSTS": "batch1 1 h41n01 20 h41n02 20",
        },
        (6, 8, 2),
        "h41n01",
    ),
    "openmpi": (
        {
            "OMPI_COMM_WORLD_RANK": "3",
            "OMPI_COMM_WORLD_SIZE": "4",
            "OMPI_COMM_WORLD_LOCAL_RANK": "1",
            "SLURM_PROCID": "0",
            "SLURM_JOB_NODELIST": "gpu[1-2]",
        },
        (3, 4, 1),
        "gpu1",
    ),
    "pmi": (
        {
            "PMI_RANK": "7",
            "PMI_SIZE": "8",
            "MPI_LOCALRANKID": "3",
            "SLURM_PROCID": "0",
            "SLURM_NTASKS": "8",
            "SLURM_JOB_NODELIST": "c[401-402]",
        },
        (7, 8, 3),
        "c401",
    ),
    "pmix": ({"PMIX_RANK": "2", "PMI_SIZE": "4", "HPCSCALE_RANKS_PER_NODE": "2"}, (2, 4, 0), None),
    "aprun": (
        {
            "ALPS_APP_PE": "9",
            "HPCSCALE_WORLD_SIZE": "16",
            "HPCSCALE_RANKS_PER_NODE": "4",
            "PBS_JOBID": "1.titan",
        },
        (9, 16, 1),
        None,
    ),
    "horovodrun": (
        {
            "HOROVOD_RANK": "1",
            "HOROVOD_SIZE": "2",
            "HOROVOD_LOCAL_RANK": "1",
            "HOROVOD_HOSTNAME": "localhost",
        },
        (1, 2, 1),
        None,
    ),
    "torchrun": (
        {
            "RANK": "1",
            "WORLD_SIZE": "2",
            "LOCAL_RANK": "1",
            "MASTER_ADDR": "10.0.0.1",
            "MASTER_PORT": "1234",
            "TORCHELASTIC_RUN_ID": "x",
        },
        (1, 2, 1),
        "10.0.0.1",
    ),
}


@pytest.mark.parametrize("launcher", sorted(CASES))
def test_launcher_variables(launcher, tmp_path):
    env, (rank, size, local), addr = CASES[launcher]
    job = detect(env)
    assert job.launcher == launcher
    assert (job.rank, job.world_size, job.local_rank) == (rank, size, local)
    if addr:
        assert job.master_addr == addr


def test_ibrun_is_pmi_under_slurm_batch():
    """ibrun (Intel MPI under Slurm): the batch step's SLURM_PROCID=0 must not win."""
    env = {
        "SLURM_PROCID": "0",
        "SLURM_NTASKS": "8",
        "SLURM_JOB_ID": "9",
        "PMI_RANK": "6",
        "PMI_SIZE": "8",
        "MPI_LOCALRANKID": "2",
        "SLURM_JOB_NODELIST": "c[401-402]",
    }
    job = detect(env)
    assert (job.launcher, job.rank, job.local_rank) == ("pmi", 6, 2)


def test_batch_script_alone_is_single():
    job = detect(
        {"SLURM_PROCID": "0", "SLURM_NTASKS": "1", "SLURM_JOB_ID": "5", "SLURM_JOB_NODELIST": "n1"}
    )
    assert (job.launcher, job.rank, job.world_size) == ("single", 0, 1)


def test_pbs_nodefile(tmp_path):
    nodefile = tmp_path / "nodes"
    nodefile.write_text("n7\nn7\nn8\nn8\n")
    job = detect(
        {
            "ALPS_APP_PE": "0",
            "HPCSCALE_WORLD_SIZE": "4",
            "PBS_NODEFILE": str(nodefile),
            "PBS_JOBID": "3",
        }
    )
    assert job.nodes == ("n7", "n8") and job.master_addr == "n7"


def test_port_from_job_id_is_stable_and_distinct():
    a = detect({"SLURM_JOB_ID": "100"}).master_port
    assert a == detect({"SLURM_JOB_ID": "100"}).master_port
    assert a != detect({"SLURM_JOB_ID": "101"}).master_port
    assert detect({}).master_port == DEFAULT_PORT
    # below the kernel's ephemeral ports, which other processes' connections hold
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = {detect({"SLURM_JOB_ID": str(i)}).master_port for i in range(2000)}
    assert max(ports) < low and len(ports) > 1000


def test_rank_arguments_expand_env_references_as_a_job_shell_would():
    from hpcscale.envref import expand_refs

    env = {"SCRATCH": "/scratch/u1", "PROJ": "p 1"}
    argv = ["--data", "${SCRATCH}/lartpc", "--out", "${PROJ}/${SCRATCH}", "--job", "$SCRATCH"]
    assert expand_refs(argv, env) == [
        "--data",
        "/scratch/u1/lartpc",
        "--out",
        "p 1//scratch/u1",
        "--job",
        "$SCRATCH",
    ]  # fmt: skip  (only the braced form, the one descriptors may carry)
    assert expand_refs(["--data", "${NOPE}/x"], env) == ["--data", "${NOPE}/x"]
