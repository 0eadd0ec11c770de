"""Issue 14: every request renders right for its scheduler or is refused with one line (exit 2).

Each numbered problem of the issue has a test here, on a small descriptor in its own
``--sites-dir``, through the CLI as a user runs it. The scripts are then checked by the fake
schedulers (tests/fakesched.py), which refuse directives the real ones refuse.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import cli

NODE = {"cpu": "x", "arch": "x86_64", "sockets": 2, "cores_per_socket": 4, "memory_gb": 64}
GPU_NODE = {**NODE, "gpus": {"model": "V100", "count": 4, "memory_gb": 16, "link": "nvlink"}}


def site(tmp_path: Path, name: str = "mysite", **fields) -> Path:
    """A descriptor with ``fields`` over a 4-GPU, 8-core Slurm + srun default; returns its dir."""
    data = {
        "scheduler": {"kind": "slurm"},
        "launcher": {"kind": "srun"},
        "node": GPU_NODE,
        "limits": {"max_nodes": 8, "max_walltime": "08:00:00"},
    }
    for key, value in fields.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) and key in data else value
    folder = tmp_path / "sites"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(data))
    return folder


def render(sites: Path, *args: str, name: str = "mysite") -> str:
    res = cli("render", "--site", name, "--sites-dir", str(sites), *args, timeout=60)
    assert res.returncode == 0, res.stderr
    return res.stdout


def refused(sites: Path, *args: str, name: str = "mysite") -> str:
    """The one error line of a refused render (and of `sites validate` on the same descriptor
    when the descriptor itself is at fault)."""
    res = cli("render", "--site", name, "--sites-dir", str(sites), *args, timeout=60)
    assert res.returncode == 2, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.stderr and res.stdout == ""
    return lines[0]


def invalid(sites: Path, name: str = "mysite") -> str:
    res = cli("sites", "validate", str(sites / f"{name}.yaml"), timeout=60)
    assert res.returncode == 2, res.stdout
    (line,) = res.stderr.strip().splitlines()
    return line


def header(script: str, prefix: str) -> list[str]:
    return [line[len(prefix) + 1 :] for line in script.splitlines() if line.startswith(prefix)]


def launch_line(script: str) -> str:
    return script.rstrip("\n").splitlines()[-1]


# --- 1. LSF without jsrun asks for GPUs, features; QoS is refused ------------------------------

LSF_MPI = {"scheduler": {"kind": "lsf"}, "launcher": {"kind": "mpirun", "mpi": "openmpi"}}


def test_1_lsf_without_jsrun_asks_for_gpus_and_features(tmp_path):
    sites = site(tmp_path, **{**LSF_MPI, "scheduler": {"kind": "lsf", "constraint": "gpu&nvme"}})
    script = render(sites, "--gpus", "8")
    bsub = header(script, "#BSUB")
    assert '-gpu "num=4"' in bsub  # per host: 4 ranks of one GPU each
    assert '-R "span[ptile=8] select[gpu && nvme]"' in bsub
    line = refused(sites, "--gpus", "8", "--qos", "high")
    assert "scheduler.qos 'high': LSF cannot express it" in line
    sites = site(tmp_path, **{**LSF_MPI, "scheduler": {"kind": "lsf", "qos": "high"}})
    assert "scheduler.qos 'high': LSF cannot express it" in invalid(sites)


def test_1_lsf_any_of_features_and_host_exclusion(tmp_path):
    sites = site(tmp_path, **LSF_MPI)
    script = render(sites, "--gpus", "4", "--constraint", "a|b", "--exclude", "h1,h2")
    assert '#BSUB -R "span[ptile=8] select[(a || b) && hname!=h1 && hname!=h2]"' in script


# --- 2. LSF slots cover the cores mpirun binds ------------------------------------------------


def test_2_lsf_shared_hosts_reserve_every_core_mpirun_binds(tmp_path):
    sites = site(
        tmp_path,
        scheduler={"kind": "lsf", "exclusive": False},
        launcher={"kind": "mpirun", "mpi": "openmpi"},
        node=NODE,
        workers_per_node=2,
    )
    script = render(sites, "--nodes", "2")
    bsub = header(script, "#BSUB")
    pe = int(re.search(r"PE=(\d+)", launch_line(script)).group(1))
    ppr = int(re.search(r"ppr:(\d+):node", launch_line(script)).group(1))
    assert (pe, ppr) == (4, 2)
    assert f"-n {2 * ppr * pe}" in bsub  # one slot per bound core, on both hosts
    assert f'-R "span[ptile={ppr * pe}]"' in bsub
    assert "-x" not in bsub


# --- 3. PBS: features and QoS -----------------------------------------------------------------

PBS_MPI = {"launcher": {"kind": "mpirun", "mpi": "intel"}}


def test_3_pbspro_features_in_select_qos_refused(tmp_path):
    sites = site(tmp_path, scheduler={"kind": "pbs", "constraint": "haswell&ib"}, **PBS_MPI)
    script = render(sites, "--gpus", "8")
    assert "#PBS -l select=2:ncpus=8:mpiprocs=4:ngpus=4:haswell=True:ib=True" in script
    assert "#PBS -l place=scatter:excl" in script
    assert "scheduler.qos 'high': PBS Pro cannot express it" in refused(
        sites, "--gpus", "8", "--qos", "high"
    )
    assert "any of them (a|b)" in refused(sites, "--gpus", "8", "--constraint", "a|b")


def test_3_torque_features_qos_reservation(tmp_path):
    torque = {"kind": "pbs", "pbs_flavor": "torque", "constraint": "haswell", "qos": "high"}
    sites = site(tmp_path, scheduler={**torque, "reservation": "res1"}, **PBS_MPI)
    script = render(sites, "--gpus", "8", "--mem", "32")
    pbs = header(script, "#PBS")
    assert "-l nodes=2:ppn=8:gpus=4:haswell" in pbs
    assert "-l qos=high" in pbs and "-l advres=res1" in pbs
    assert "-l mem=65536mb" in pbs  # Torque's mem is the whole job's: 2 nodes × 32 GB
    assert "nodelist" in refused(sites, "--gpus", "8", "--nodelist", "n1,n2")


# --- 4. Ranks sharing GPUs, fewer ranks than GPUs, uneven counts -------------------------------


def test_4_ranks_sharing_gpus_are_planned(tmp_path):
    sites = site(tmp_path, node={"gpus": {**GPU_NODE["gpus"], "count": 2}}, workers_per_node=4)
    script = render(sites, "--gpus", "4")
    assert "#SBATCH --nodes=2" in script and "#SBATCH --gres=gpu:2" in script
    assert "#SBATCH --ntasks-per-node=4" in script
    assert "8 rank(s) on 2 node(s), up to 4 per node; 4 GPU(s) shared by 2 ranks each" in script
    assert "--ntasks=8 --ntasks-per-node=4" in launch_line(script)
    assert render(sites, "--nodes", "2") == script  # the same job asked by nodes
    assert "must be a multiple of 2" in refused(sites, "--ranks", "3")


def test_4_ranks_sharing_gpus_under_jsrun(tmp_path):
    sites = site(
        tmp_path,
        scheduler={"kind": "lsf"},
        launcher={"kind": "jsrun"},
        node={"gpus": {**GPU_NODE["gpus"], "count": 2}},
        workers_per_node=4,
    )
    line = launch_line(render(sites, "--gpus", "4"))
    assert "jsrun --nrs 4 --tasks_per_rs 2 --cpu_per_rs 4 --gpu_per_rs 1 --rs_per_host 2" in line


def test_4_fewer_ranks_than_gpus_and_uneven_counts(tmp_path):
    sites = site(tmp_path, scheduler={"kind": "slurm", "exclusive": False}, workers_per_node=2)
    script = render(sites, "--gpus", "6")  # 3 ranks of 2 GPUs: 2 on node 1, 1 on node 2
    assert "#SBATCH --nodes=2" in script and "#SBATCH --ntasks=3" in script
    assert "#SBATCH --gpus-per-task=2" in script and "--gres" not in script
    assert "--gpus must be a multiple of 2" in refused(sites, "--gpus", "3")


def test_4_workers_that_cannot_share_gpus_are_refused(tmp_path):
    sites = site(tmp_path, workers_per_node=3)
    assert "workers_per_node 3 on nodes of 4 GPUs" in invalid(sites)
    assert "workers_per_node 3 on nodes of 4 GPUs" in refused(sites, "--gpus", "4")


# --- 5. torchrun's per-node srun gets the node's CPUs -----------------------------------------


def test_5_multinode_torchrun_srun_has_cpus_per_task(tmp_path):
    sites = site(tmp_path, launcher={"kind": "torchrun"})
    script = render(sites, "--gpus", "8")
    (srun,) = [line for line in script.splitlines() if line.startswith("srun ")]
    assert "--ntasks=2 --ntasks-per-node=1 --cpus-per-task=8 " in srun  # 4 ranks × 2 cores
    assert '--rdzv-endpoint="$HPCSCALE_MASTER:29500"' in srun
    assert 'HPCSCALE_MASTER=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)' in script


# --- 6. Launcher × scheduler ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scheduler", "launcher", "fragment"),
    [
        ({"kind": "pbs"}, {"kind": "srun"}, "launcher.kind 'srun' cannot start ranks under PBS"),
        ({"kind": "lsf"}, {"kind": "ibrun"}, "launcher.kind 'ibrun' cannot start ranks under LSF"),
        ({"kind": "slurm"}, {"kind": "jsrun"}, "'jsrun' cannot start ranks under Slurm"),
        ({"kind": "local"}, {"kind": "mpirun", "mpi": "openmpi"}, "under the local scheduler"),
        ({"kind": "slurm"}, {"kind": "local"}, "'local' cannot start ranks under Slurm"),
    ],
)
def test_6_impossible_launchers_are_refused_at_validation(tmp_path, scheduler, launcher, fragment):
    sites = site(tmp_path, scheduler=scheduler, launcher=launcher)
    line = invalid(sites)
    assert fragment in line and "use one of:" in line


@pytest.mark.parametrize("flavor", ["pbspro", "torque"])
def test_6_torchrun_under_pbs_uses_the_pbs_node_list(tmp_path, flavor):
    sites = site(
        tmp_path, scheduler={"kind": "pbs", "pbs_flavor": flavor}, launcher={"kind": "torchrun"}
    )
    script = render(sites, "--gpus", "8")
    for slurm_word in ("srun", "scontrol", "SLURM_"):
        assert slurm_word not in script
    assert 'HPCSCALE_MASTER=$(head -n 1 "$PBS_NODEFILE")' in script
    remote = "pbs_tmrsh" if flavor == "pbspro" else "pbsdsh -h"
    assert f'  {remote} "$host" /usr/bin/env PATH="$PATH"' in script
    assert "torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d" in script
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0


def test_6_torchrun_under_lsf_uses_blaunch(tmp_path):
    sites = site(tmp_path, scheduler={"kind": "lsf"}, launcher={"kind": "torchrun"})
    script = render(sites, "--gpus", "8")
    assert "srun" not in script and "SLURM" not in script
    assert '"$LSB_DJOB_HOSTFILE"' in script and 'blaunch -u "$HPCSCALE_HOSTS" torchrun' in script


def test_6_mpirun_needs_its_mpi(tmp_path):
    sites = site(tmp_path, launcher={"kind": "mpirun"})
    assert "launcher.mpi is required with mpirun" in invalid(sites)


# --- 7. Walltime rounds up; the training core is told what the scheduler enforces -------------


def time_limit(script: str) -> int:
    return int(re.search(r"--time-limit (\d+)", script).group(1))


@pytest.mark.parametrize(
    ("walltime", "directive", "seconds"),
    [("00:03:30", "#BSUB -W 00:04", 240), ("01:30:45", "#BSUB -W 01:31", 5460)],
)
def test_7_lsf_walltime_rounds_up(tmp_path, walltime, directive, seconds):
    sites = site(tmp_path, **LSF_MPI)
    script = render(sites, "--gpus", "4", "--walltime", walltime)
    assert directive in script.splitlines()
    assert time_limit(script) == seconds


def test_7_slurm_rounds_to_minutes_pbs_keeps_seconds(tmp_path):
    script = render(site(tmp_path), "--gpus", "4", "--walltime", "01:30:45")
    assert "#SBATCH --time=01:31:00" in script and time_limit(script) == 5460
    sites = site(tmp_path, name="pbssite", scheduler={"kind": "pbs"}, **PBS_MPI)
    script = render(sites, "--gpus", "4", "--walltime", "01:30:45", name="pbssite")
    assert "#PBS -l walltime=01:30:45" in script and time_limit(script) == 5445


def test_7_rounding_over_the_limit_is_refused(tmp_path):
    sites = site(tmp_path, **{**LSF_MPI, "limits": {"max_nodes": 2, "max_walltime": "01:00:30"}})
    line = refused(sites, "--gpus", "4", "--walltime", "01:00:30")
    assert "rounded up to 01:01:00" in line


# --- 8. Verbatim lines ------------------------------------------------------------------------


def test_8_verbatim_lines_are_not_prefixed(tmp_path):
    dw = "#DW jobdw capacity=1TB access_mode=striped type=scratch"
    sites = site(tmp_path, scheduler={"kind": "slurm", "directives": [dw, "--mail-type=END"]})
    lines = render(sites, "--gpus", "4").splitlines()
    assert dw in lines and "#SBATCH --mail-type=END" in lines
    assert not any(line.startswith("#SBATCH #") for line in lines)
    assert lines.index(dw) < lines.index("#")  # in the header, before the first command


# --- 9. render, submit --dry-run and submit: one script ----------------------------------------


def test_9_render_dry_run_and_submit_are_the_same_script(tmp_path, fake_scheduler):
    sites = site(tmp_path, scheduler={"kind": "slurm", "partition": "gpu"})
    study = tmp_path / "study"
    common = ("--site", "mysite", "--sites-dir", str(sites), "--study", str(study))
    data = ("--data", str(tmp_path / "elsewhere"))
    res = cli("submit", "--gpus", "4", *common, *data, "--dry-run", timeout=120)
    assert res.returncode == 0, res.stderr
    dry = (study / "jobs" / "4g" / "job.sh").read_text()
    res = cli("render", "--gpus", "4", *common, *data, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout == dry
    res = cli("submit", "--gpus", "4", *common, *data, timeout=120)
    assert res.returncode == 0, res.stderr
    (submitted,) = fake_scheduler.calls("sbatch")
    assert submitted["script"] == (study / "jobs" / "4g" / "job.sh").read_text() == dry
    assert f"-m submitit.core._submit {study / 'jobs' / '4g' / 'submitit'}" in dry
    rank_args = dry.split("with: ", 1)[1].splitlines()[0]
    assert shlex.split(rank_args)[:2] == ["--site", "mysite"]


# --- 10. status asks bjobs and qstat --------------------------------------------------------


@pytest.mark.parametrize(
    ("scheduler", "job_id", "poller"),
    [
        ("lsf", "1000", "bjobs"),
        ("pbs", "1000.fakepbs", "qstat"),
        ("torque", "1000.fakepbs", "qstat"),
    ],
)
def test_10_status_reads_lsf_and_pbs_states(tmp_path, fake_scheduler, scheduler, job_id, poller):
    import json
    import time

    from hpcscale.study import JobRecord, StudyManifest, save

    study = tmp_path / "study"
    record = JobRecord(
        label="4g", gpus=4, ranks=4, nodes=1, walltime_s=60, folder="jobs/4g",
        script="jobs/4g/job.sh", job_id=job_id, state="submitted",
    )  # fmt: skip
    (study / "jobs" / "4g" / "submitit").mkdir(parents=True)
    save(study, StudyManifest(study="s", site="x", site_digest="-", scheduler=scheduler,
                         created=time.time(), jobs=[record]))  # fmt: skip
    state_file = fake_scheduler.state / f"job-{job_id}.json"
    for fake, shown in (({"state": "RUNNING"}, "running"), ({"state": "DONE", "rc": 1}, "failed")):
        state_file.write_text(json.dumps(fake))
        res = cli("status", str(study), timeout=60)
        assert res.returncode == 0, res.stderr
        assert shown in res.stdout, res.stdout
    assert fake_scheduler.calls(poller)
    state_file.write_text(json.dumps({"state": "DONE", "rc": 0}))
    assert "completed" in cli("status", str(study), timeout=60).stdout


# --- minor ----------------------------------------------------------------------------------


def test_minor_uneven_gpus_on_shared_slurm_asks_for_what_it_uses(tmp_path):
    sites = site(tmp_path, scheduler={"kind": "slurm", "exclusive": False},
                 node={"gpus": {**GPU_NODE["gpus"], "count": 2}})  # fmt: skip
    script = render(sites, "--gpus", "3")
    assert "#SBATCH --nodes=2" in script and "#SBATCH --ntasks=3" in script
    assert "#SBATCH --gpus-per-task=1" in script and "--gres" not in script


# --- the new request fields, per scheduler ----------------------------------------------------


def test_slurm_request_fields(tmp_path):
    sites = site(tmp_path, scheduler={"kind": "slurm", "gpu_request": "gpus-per-node"},
                 node={"threads_per_core": 2})  # fmt: skip
    args = "--cpus-per-task 4 --threads-per-core 2 --mem 48 --reservation r1 --nodelist n1,n2"
    args += " --exclude n3 --constraint a&b --qos q"
    script = render(sites, "--gpus", "8", *args.split())
    sbatch = header(script, "#SBATCH")
    for expected in ("--cpus-per-task=4", "--threads-per-core=2", "--gpus-per-node=4",
                     "--mem=48G", "--reservation=r1", "--nodelist=n1,n2", "--exclude=n3",
                     "--constraint=a&b", "--qos=q"):  # fmt: skip
        assert expected in sbatch
    assert "--cpus-per-task=4 --threads-per-core=2 " in launch_line(script)
    assert "export OMP_NUM_THREADS=4" in script
    assert "over the node's 8 CPUs" in refused(sites, "--gpus", "4", "--cpus-per-task", "3")
    assert "over the node's node.threads_per_core 2" in refused(
        sites, "--gpus", "4", "--threads-per-core", "4"
    )


def test_lsf_jsrun_request_fields(tmp_path):
    sites = site(tmp_path, scheduler={"kind": "lsf", "reservation": "r1", "nodelist": ["a", "b"]},
                 launcher={"kind": "jsrun"}, node={"threads_per_core": 4})  # fmt: skip
    bsub = header(render(sites, "--gpus", "8", "--threads-per-core", "4"), "#BSUB")
    assert {"-nnodes 2", "-alloc_flags smt4", "-U r1", '-m "a b"'} <= set(bsub)
    assert not any(b.startswith("-gpu") for b in bsub)  # jsrun asks per resource set
    assert "LSF with jsrun allocates whole nodes" in refused(sites, "--gpus", "4", "--mem", "8")


def test_pbspro_memory_and_refusals(tmp_path):
    sites = site(tmp_path, scheduler={"kind": "pbs", "exclusive": False}, **PBS_MPI)
    script = render(sites, "--gpus", "6", "--mem", "16")  # 4 + 2: a chunk per node shape
    assert (
        "#PBS -l select=1:ncpus=8:mpiprocs=4:ngpus=4:mem=16384mb"
        "+1:ncpus=4:mpiprocs=2:ngpus=2:mem=16384mb"
    ) in script
    assert "#PBS -l place=scatter" in script.splitlines()
    for flag, fragment in (("--reservation", "reservation's queue"), ("--exclude", "exclusion"),
                           ("--threads-per-core", "SMT")):  # fmt: skip
        assert fragment in refused(sites, "--gpus", "4", flag, "1")


def test_slurm_only_gpu_request_refused_elsewhere(tmp_path):
    sites = site(tmp_path, scheduler={"kind": "pbs", "gpu_request": "gpus-per-node"}, **PBS_MPI)
    assert "scheduler.gpu_request 'gpus-per-node' is Slurm's" in invalid(sites)


def test_hostile_request_values_never_reach_the_script(tmp_path):
    sites = site(tmp_path)
    line = refused(sites, "--gpus", "4", "--reservation", "r1\n#SBATCH --uid=0")
    assert line.startswith("error: --reservation: scheduler.reservation:")
    line = refused(sites, "--gpus", "4", "--nodelist", "n1,$(touch x)")
    assert "scheduler.nodelist.1" in line


# --- the fake schedulers accept what hpcscale writes and refuse what the real ones refuse ------


@pytest.fixture
def checks(monkeypatch, tmp_path):
    import importlib
    import sys

    monkeypatch.setenv("FAKESCHED_DIR", str(tmp_path))
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    sys.modules.pop("fakesched", None)
    return importlib.import_module("fakesched")


RENDERED = [
    ({"scheduler": {"kind": "slurm", "exclusive": False, "directives": ["#DW jobdw x"]}},
     ("--gpus", "6"), "sbatch"),
    ({"launcher": {"kind": "torchrun"}}, ("--gpus", "8", "--mem", "1.5"), "sbatch"),
    (LSF_MPI, ("--gpus", "8", "--walltime", "00:03:30", "--constraint", "a|b"), "bsub"),
    ({"scheduler": {"kind": "lsf", "exclusive": False}, "launcher": {"kind": "mpirun",
      "mpi": "openmpi"}}, ("--gpus", "6"), "bsub"),
    ({"scheduler": {"kind": "pbs", "exclusive": False}, **PBS_MPI}, ("--gpus", "6"), "qsub"),
    ({"scheduler": {"kind": "pbs", "pbs_flavor": "torque", "exclusive": False}, **PBS_MPI},
     ("--gpus", "6", "--qos", "q"), "qsub"),
]  # fmt: skip


@pytest.mark.parametrize(("fields", "args", "submit"), RENDERED)
def test_fake_schedulers_accept_the_rendered_scripts(tmp_path, checks, fields, args, submit):
    script = render(site(tmp_path, **fields), *args)
    assert getattr(checks, f"check_{submit}")(script) is None


@pytest.mark.parametrize(
    ("submit", "script", "fragment"),
    [
        ("sbatch", "#!/bin/bash\n#SBATCH --foo=1\n", "unrecognized option"),
        ("sbatch", "#!/bin/bash\n#SBATCH --time=01:30:45:00\n", "Invalid time limit"),
        ("sbatch", "#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks=5\n"
         "#SBATCH --ntasks-per-node=2\n", "5 tasks cannot run on 2 nodes"),
        ("bsub", "#!/bin/bash\n#BSUB -W 01:30:45\n", "Bad RUNLIMIT"),
        ("bsub", "#!/bin/bash\n#BSUB -W 00:00\n", "Bad RUNLIMIT"),
        ("bsub", "#!/bin/bash\n#BSUB -W 10\n#BSUB -n 2\n#BSUB -nnodes 2\n", "together"),
        ("qsub", "#!/bin/bash\n#PBS -l select=2:ncpus=4\n#PBS -l nodes=2:ppn=4\n", "together"),
        ("qsub", "#!/bin/bash\n#PBS -l select=2:ncpus=4 :ngpus=2\n", "Illegal attribute"),
    ],
)  # fmt: skip
def test_fake_schedulers_refuse_what_the_real_ones_refuse(checks, submit, script, fragment):
    assert fragment in getattr(checks, f"check_{submit}")(script)
