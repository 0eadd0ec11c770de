#!/usr/bin/env python3
"""One fake for every scheduler and launcher command, dispatched on the name it is called by.

Each call is appended to $FAKESCHED_DIR/calls.jsonl (argv, and the script for submissions).
Submissions really run the script (in the background, like a batch system) with the variables
the real scheduler sets; launchers really start N copies of the command with the variables the
real launcher sets; state commands answer in the real commands' formats from state files.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

STATE = Path(os.environ["FAKESCHED_DIR"])
HOST = socket.gethostname()


def record(name: str, argv: list[str], **extra: object) -> None:
    with open(STATE / "calls.jsonl", "a") as fh:
        fh.write(json.dumps({"cmd": name, "argv": argv, **extra}) + "\n")


def next_id() -> str:
    counter = STATE / "next_id"
    value = int(counter.read_text()) if counter.exists() else 1000
    counter.write_text(str(value + 1))
    return str(value)


def directive(script: str, prefix: str, flag: str) -> str | None:
    for line in script.splitlines():
        m = re.match(rf"^{re.escape(prefix)}\s+{re.escape(flag)}[= ](\S+)", line)
        if m:
            return m.group(1).strip("'\"")
    return None


def start_job(
    job_id: str,
    script: Path,
    env: dict[str, str],
    out: str | None,
    delay: float = 0.0,
    cwd: str | None = None,
) -> None:
    """Run the script in the background; the state file says RUNNING, then the exit code.
    A requeue starts a new generation; only the current generation writes the final state."""
    state = STATE / f"job-{job_id}.json"
    gen_file = STATE / f"job-{job_id}.gen"
    gen = int(gen_file.read_text()) + 1 if gen_file.exists() else 0
    gen_file.write_text(str(gen))
    state.write_text(json.dumps({"state": "PENDING" if delay else "RUNNING"}))
    cwd = cwd or os.getcwd()
    launch = {"script": str(script), "env": env, "out": out, "cwd": cwd}
    (STATE / f"job-{job_id}.launch.json").write_text(json.dumps(launch))
    log = open(out, "a") if out else subprocess.DEVNULL  # noqa: SIM115
    done = '{"state": "DONE", "rc": RC}'
    runner = (
        f'sleep {delay}; echo \'{{"state": "RUNNING"}}\' > {state}; bash {script}; rc=$?; '
        f'if [ "$(cat {gen_file})" = {gen} ]; then '
        f"echo '{done}' | sed \"s/RC/$rc/\" > {state}; fi"
    )
    proc = subprocess.Popen(
        ["bash", "-c", runner],
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=cwd,
    )
    (STATE / f"job-{job_id}.pid").write_text(str(proc.pid))


def scontrol(argv: list[str]) -> int:
    """``scontrol requeue ID``: end the running job, start it again a few seconds later."""
    record("scontrol", argv)
    if argv[:1] != ["requeue"]:
        return 0
    jid = argv[1]
    launch = json.loads((STATE / f"job-{jid}.launch.json").read_text())
    old_pid = int((STATE / f"job-{jid}.pid").read_text())
    start_job(
        jid, Path(launch["script"]), launch["env"], launch["out"], delay=5.0, cwd=launch["cwd"]
    )
    with contextlib.suppress(ProcessLookupError):
        os.killpg(old_pid, signal.SIGTERM)
    return 0


def job_state(job_id: str) -> tuple[str, int | None]:
    path = STATE / f"job-{job_id}.json"
    if not path.exists():
        return "UNKNOWN", None
    data = json.loads(path.read_text())
    return data["state"], data.get("rc")


# --- directive checks: what the real commands refuse ------------------------------------------

SBATCH_OPTIONS = {
    "--job-name", "--nodes", "--ntasks", "--ntasks-per-node", "--cpus-per-task", "--gres",
    "--gpus-per-node", "--gpus-per-task", "--mem", "--time", "--partition", "--account",
    "--constraint", "--qos", "--reservation", "--nodelist", "--exclude", "--exclusive",
    "--output", "--error", "--signal", "--threads-per-core", "--hint", "--mail-type", "--no-kill",
}  # fmt: skip
BSUB_FLAGS = {"-J", "-nnodes", "-n", "-R", "-gpu", "-alloc_flags", "-W", "-q", "-P", "-U", "-m",
              "-x", "-o", "-e", "-wa", "-wt", "-sla", "-B", "-N"}  # fmt: skip


def directives(script: str, prefix: str) -> list[str]:
    """The scheduler's directive lines, until the first command line (as the real parsers)."""
    lines = []
    for line in script.splitlines()[1:]:
        if not line.startswith("#"):
            break
        if line.startswith(prefix + " ") or line == prefix:
            lines.append(line[len(prefix) :].strip())
    return lines


def refuse(name: str, message: str) -> int:
    record(f"{name}-refused", [message])
    print(f"{name}: error: {message}", file=sys.stderr)
    return 1


def check_sbatch(text: str) -> str | None:
    opts: dict[str, str] = {}
    for line in directives(text, "#SBATCH"):
        if line.startswith("#"):  # sbatch ignores it (a #DW line after #SBATCH is lost)
            continue
        key, _, value = line.partition("=")
        if key not in SBATCH_OPTIONS:
            return f"unrecognized option '{line}'"
        opts[key] = value
    if "--time" in opts and not re.fullmatch(r"(\d+-)?\d+:\d\d:\d\d|\d+", opts["--time"]):
        return f"Invalid time limit specification {opts['--time']}"
    nodes = int(opts.get("--nodes", 1))
    per_node = int(opts.get("--ntasks-per-node", 1))
    ntasks = int(opts.get("--ntasks", nodes * per_node))
    if ntasks > nodes * per_node or ntasks < nodes:
        return f"{ntasks} tasks cannot run on {nodes} nodes of at most {per_node} tasks"
    if "--gres" in opts and not re.fullmatch(r"gpu(:\w+)?:\d+", opts["--gres"]):
        return f"Invalid generic resource (gres) specification {opts['--gres']}"
    return None


def check_bsub(text: str) -> str | None:
    opts: dict[str, str] = {}
    for line in directives(text, "#BSUB"):
        flag, _, value = line.partition(" ")
        if flag not in BSUB_FLAGS:
            return f"{line}: Illegal option"
        opts[flag] = value.strip()
    if "-n" in opts and "-nnodes" in opts:
        return "-n and -nnodes cannot be used together"
    walltime = opts.get("-W", "")
    if not re.fullmatch(r"(\d+:)?\d+", walltime) or not any(int(p) for p in walltime.split(":")):
        return f"-W {walltime}: Bad RUNLIMIT specification (takes [hour:]minute, above zero)"
    if "-gpu" in opts and not re.fullmatch(r'"num=\d+(/task|/host)?"', opts["-gpu"]):
        return f"-gpu {opts['-gpu']}: Bad GPU requirement"
    return None


def check_qsub(text: str) -> str | None:
    opts: list[str] = directives(text, "#PBS")
    resources = [o[3:] for o in opts if o.startswith("-l ")]
    for item in resources:
        key, _, value = item.partition("=")
        if key == "select":
            chunk = r"\d+(:\w+=[\w.]+)+"
            if not re.fullmatch(rf"{chunk}(\+{chunk})*", value):
                return f"Illegal attribute or resource value Resource_List.select: {value}"
        elif key == "nodes":
            part = r"\d+:ppn=\d+(:gpus=\d+)?(:[A-Za-z][\w.-]*)*"
            if not re.fullmatch(rf"{part}(\+{part})*", value):
                return f"Illegal attribute or resource value for nodes: {value}"
        elif key == "walltime" and not re.fullmatch(r"\d+:\d\d:\d\d", value):
            return f"illegal -l value walltime={value}"
    keys = {r.partition("=")[0] for r in resources}
    if {"select", "nodes"} <= keys:
        return "-l select and -l nodes cannot be used together"
    for o in opts:
        if o.split(" ", 1)[0] not in ("-N", "-l", "-q", "-A", "-o", "-e", "-j", "-M", "-m"):
            return f"illegal option -- {o}"
    return None


# --- submission -------------------------------------------------------------------------------


def sbatch(argv: list[str]) -> int:
    script = Path(argv[-1])
    text = script.read_text()
    problem = check_sbatch(text)
    if problem:
        return refuse("sbatch", problem)
    record("sbatch", argv, script=text)
    jid = next_id()
    nodes = int(directive(text, "#SBATCH", "--nodes") or 1)
    per_node = int(directive(text, "#SBATCH", "--ntasks-per-node") or 1)
    out = (directive(text, "#SBATCH", "--output") or f"slurm-{jid}.out").replace("%j", jid)
    env = {
        "SLURM_JOB_ID": jid,
        "SLURM_JOB_NODELIST": HOST,
        "SLURM_NNODES": str(nodes),
        "SLURM_NTASKS": directive(text, "#SBATCH", "--ntasks") or str(nodes * per_node),
        "SLURM_PROCID": "0",
        "SLURM_SUBMIT_DIR": os.getcwd(),
    }
    start_job(jid, script, env, out)
    print(f"Submitted batch job {jid}")
    return 0


def bsub(argv: list[str]) -> int:
    text = sys.stdin.read()
    problem = check_bsub(text)
    if problem:
        return refuse("bsub", problem)
    record("bsub", argv, script=text)
    jid = next_id()
    script = STATE / f"bsub-{jid}.sh"
    script.write_text(text)
    out = (directive(text, "#BSUB", "-o") or f"lsf-{jid}.out").replace("%J", jid)
    env = {"LSB_JOBID": jid, "LSB_MCPU_HOSTS": f"batch1 1 {HOST} 40", "LS_SUBCWD": os.getcwd()}
    start_job(jid, script, env, out)
    print(f"Job <{jid}> is submitted to queue <batch>.")
    return 0


def qsub(argv: list[str]) -> int:
    script = Path(argv[-1])
    text = script.read_text()
    problem = check_qsub(text)
    if problem:
        return refuse("qsub", problem)
    record("qsub", argv, script=text)
    jid = next_id() + ".fakepbs"
    nodefile = STATE / f"nodes-{jid}"
    nodefile.write_text(f"{HOST}\n")
    env = {"PBS_JOBID": jid, "PBS_NODEFILE": str(nodefile), "PBS_O_WORKDIR": os.getcwd()}
    start_job(jid, script, env, str(Path(os.getcwd()) / f"pbs-{jid}.out"))
    print(jid)
    return 0


# --- state and cancel -------------------------------------------------------------------------


def sacct(argv: list[str]) -> int:
    record("sacct", argv)
    ids = [argv[i + 1] for i, a in enumerate(argv) if a == "-j"]
    print("JobID|State|NodeList")
    for jid in ids:
        state, rc = job_state(jid)
        name = {
            "RUNNING": "RUNNING",
            "PENDING": "PENDING",
            "DONE": "COMPLETED" if rc == 0 else "FAILED",
        }.get(state, "PENDING")
        print(f"{jid}|{name}|{HOST}")
    return 0


def bjobs(argv: list[str]) -> int:
    record("bjobs", argv)
    ids = [a for a in argv if a.isdigit()]
    records = []
    for jid in ids:
        state, rc = job_state(jid)
        stat = {"RUNNING": "RUN", "DONE": "DONE" if rc == 0 else "EXIT"}.get(state, "PEND")
        records.append({"JOBID": jid, "STAT": stat})
    print(json.dumps({"COMMAND": "bjobs", "JOBS": len(records), "RECORDS": records}))
    return 0


def qstat(argv: list[str]) -> int:
    """PBS Pro's ``qstat -f -F json -x``; Torque's ``qstat -f`` (text, finished jobs as C)."""
    record("qstat", argv)
    ids = [a for a in argv if a.endswith(".fakepbs")]
    if "json" in argv:
        jobs = {}
        for jid in ids:
            state, rc = job_state(jid)
            code = {"RUNNING": "R", "PENDING": "Q"}.get(state, "F")
            jobs[jid] = {"job_state": code, "Exit_status": rc or 0}
        print(json.dumps({"Jobs": jobs}))
        return 0
    for jid in ids:
        state, rc = job_state(jid)
        code = {"RUNNING": "R", "PENDING": "Q"}.get(state, "C")
        print(f"Job Id: {jid}\n    Job_Name = fake\n    job_state = {code}")
        if code == "C":
            print(f"    exit_status = {rc or 0}")
        print()
    return 0


def cancel(name: str, argv: list[str]) -> int:
    record(name, argv)
    jid = next(a for a in argv if not a.startswith("-"))
    pid_file = STATE / f"job-{jid}.pid"
    if pid_file.exists():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(int(pid_file.read_text()), signal.SIGTERM)
    return 0


# --- launchers --------------------------------------------------------------------------------


def split_launcher(argv: list[str], with_value: set[str]) -> tuple[dict[str, str], list[str]]:
    """Options before the command; ``with_value`` flags take the next word."""
    opts: dict[str, str] = {}
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        flag = argv[i]
        if "=" in flag:
            key, value = flag.split("=", 1)
            opts[key] = value
        elif flag in with_value:
            opts[flag] = argv[i + 1]
            i += 1
        else:
            opts[flag] = ""
        i += 1
    return opts, argv[i:]


def run_tasks(
    n: int, command: list[str], env_for, out: str | None = None, err: str | None = None
) -> int:
    procs = []
    for rank in range(n):
        o = open(out.replace("%t", str(rank)), "a") if out else None  # noqa: SIM115
        e = open(err.replace("%t", str(rank)), "a") if err else None  # noqa: SIM115
        procs.append(
            subprocess.Popen(command, env={**os.environ, **env_for(rank, n)}, stdout=o, stderr=e)
        )
    return max(p.wait() for p in procs)


def srun(argv: list[str]) -> int:
    record("srun", argv)
    opts, command = split_launcher(argv, {"--output", "--error", "-n", "-N"})
    n = int(opts.get("--ntasks") or opts.get("-n") or os.environ.get("SLURM_NTASKS", 1))
    jid = os.environ.get("SLURM_JOB_ID", "0")
    out = opts.get("--output", "").replace("%j", jid) or None
    err = opts.get("--error", "").replace("%j", jid) or None
    return run_tasks(
        n,
        command,
        lambda r, size: {
            "SLURM_PROCID": str(r),
            "SLURM_LOCALID": str(r),
            "SLURM_NTASKS": str(size),
            "SLURM_STEP_ID": "0",
        },
        out,
        err,
    )


def jsrun(argv: list[str]) -> int:
    record("jsrun", argv)
    opts, command = split_launcher(
        argv, {"--nrs", "--tasks_per_rs", "--cpu_per_rs", "--gpu_per_rs", "--rs_per_host", "--bind"}
    )
    n = int(opts["--nrs"])
    return run_tasks(
        n,
        command,
        lambda r, size: {
            "JSM_NAMESPACE_RANK": str(r),
            "JSM_NAMESPACE_SIZE": str(size),
            "JSM_NAMESPACE_LOCAL_RANK": str(r),
        },
    )


def mpirun(argv: list[str]) -> int:
    record("mpirun", argv)
    opts, command = split_launcher(argv, {"-np", "-ppn", "--map-by", "--bind-to", "-x"})
    n = int(opts["-np"])
    if "--map-by" in opts:  # OpenMPI's words
        return run_tasks(
            n,
            command,
            lambda r, size: {
                "OMPI_COMM_WORLD_RANK": str(r),
                "OMPI_COMM_WORLD_SIZE": str(size),
                "OMPI_COMM_WORLD_LOCAL_RANK": str(r),
            },
        )
    return run_tasks(
        n,
        command,
        lambda r, size: {"PMI_RANK": str(r), "PMI_SIZE": str(size), "MPI_LOCALRANKID": str(r)},
    )


def ibrun(argv: list[str]) -> int:
    record("ibrun", argv)
    _, command = split_launcher(argv, set())
    n = int(os.environ.get("SLURM_NTASKS", 1))
    return run_tasks(
        n,
        command,
        lambda r, size: {"PMI_RANK": str(r), "PMI_SIZE": str(size), "MPI_LOCALRANKID": str(r)},
    )


def aprun(argv: list[str]) -> int:
    record("aprun", argv)
    opts, command = split_launcher(argv, {"-n", "-N", "-d", "-cc"})
    return run_tasks(int(opts["-n"]), command, lambda r, size: {"ALPS_APP_PE": str(r)})


def main() -> int:
    name = Path(sys.argv[0]).name
    argv = sys.argv[1:]
    handlers = {
        "sbatch": sbatch,
        "bsub": bsub,
        "qsub": qsub,
        "sacct": sacct,
        "bjobs": bjobs,
        "qstat": qstat,
        "srun": srun,
        "jsrun": jsrun,
        "mpirun": mpirun,
        "ibrun": ibrun,
        "aprun": aprun,
        "scontrol": scontrol,
    }
    if name in handlers:
        return handlers[name](argv)
    if name in ("scancel", "bkill", "qdel"):
        return cancel(name, argv)
    if name == "squeue":
        record(name, argv)
        return 0
    record(name, argv)  # module and other no-ops
    return 0


if __name__ == "__main__":
    sys.exit(main())
