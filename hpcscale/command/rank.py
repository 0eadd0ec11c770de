"""One measured rank: the command's environment, its start, its wait, what it used, its status.

Measured always: the command's start → exit (wall seconds since this rank's process start, and
the clock times), its exit status (a signal by name), the host, its peak resident memory (the
largest of its waited-for processes, ``getrusage``), its peak GPU memory where ``nvidia-smi``
reports it, and its stdout and stderr in the job folder (``rank-<r>.out``, ``rank-<r>.err``).
The command also finds ``HPCSCALE_TRACK_*`` in its environment, for ``hpcscale.track``.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from hpcscale import __version__
from hpcscale.command.config import CommandConfig, parse
from hpcscale.command.summary import summarize_command
from hpcscale.containers.runtime import runtime_inside
from hpcscale.errors import UserError
from hpcscale.train.entry import process_start_time
from hpcscale.train.jobenv import JobEnvironment, detect
from hpcscale.train.records import RecordWriter, write_status

POLL_S = 0.2
GPU_POLL_S = 2.0
KILL_GRACE_S = 10.0  # after SIGTERM, how long the command has before SIGKILL
STATUS_WAIT_S = 60.0  # how long rank 0 waits for the other ranks' statuses


def main(argv: list[str]) -> int:
    t0 = process_start_time()
    try:
        config, command = parse(argv)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return run(config, command, t0)


def rank_env(jobenv: JobEnvironment, engine: str, environ: dict[str, str]) -> dict[str, str]:
    """What a distributed training command expects to find: torchrun's variables (engine
    torch) or Horovod's (engine horovod), from the job environment, where the launcher did not
    set them already."""
    per_node = int(
        environ.get("LOCAL_WORLD_SIZE")
        or environ.get("SUBMITIT_LOCAL_NTASKS")
        or environ.get("SLURM_NTASKS_PER_NODE", "").split("(")[0]
        or environ.get("HPCSCALE_RANKS_PER_NODE")
        or jobenv.world_size
    )
    node = jobenv.rank // max(per_node, 1)
    nodes = max(-(-jobenv.world_size // max(per_node, 1)), 1)
    local_size = min(per_node, jobenv.world_size - node * per_node)
    port = jobenv.master_port
    if jobenv.launcher == "single" and "MASTER_PORT" not in environ:
        port = _free_port()
    out = {
        "RANK": str(jobenv.rank),
        "LOCAL_RANK": str(jobenv.local_rank),
        "WORLD_SIZE": str(jobenv.world_size),
        "LOCAL_WORLD_SIZE": str(local_size),
        "GROUP_RANK": str(node),
        "MASTER_ADDR": jobenv.master_addr,
        "MASTER_PORT": str(port),
    }
    if engine == "horovod":
        out.update(
            HOROVOD_RANK=str(jobenv.rank), HOROVOD_SIZE=str(jobenv.world_size),
            HOROVOD_LOCAL_RANK=str(jobenv.local_rank), HOROVOD_LOCAL_SIZE=str(local_size),
            HOROVOD_CROSS_RANK=str(node), HOROVOD_CROSS_SIZE=str(nodes),
            HOROVOD_HOSTNAME=socket.gethostname(),
        )  # fmt: skip
    return {k: v for k, v in out.items() if k not in environ or k.startswith("HOROVOD_")}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(config: CommandConfig, command: list[str], t0: float) -> int:
    """One rank of the command, start to finish; returns its exit code (0: it succeeded)."""
    jobenv = detect()
    folder = Path(config.out)
    folder.mkdir(parents=True, exist_ok=True)
    rank, world, host = jobenv.rank, jobenv.world_size, socket.gethostname()
    rec = RecordWriter(
        folder / f"rank-{rank}.jsonl", t0, study=config.study, site=config.site,
        job=config.job, rank=rank, world=world, segment=0, host=host,
    )  # fmt: skip
    env = dict(os.environ)
    env.update(rank_env(jobenv, config.engine, env))
    env.update(
        HPCSCALE_TRACK_FILE=str((folder / f"rank-{rank}.jsonl").absolute()),
        HPCSCALE_TRACK_T0=repr(t0),
        HPCSCALE_TRACK_ID=json.dumps(rec.identity),
        HPCSCALE_TRACK_WINDOW=str(config.ttl_window),
    )
    if config.target_loss is not None:
        env["HPCSCALE_TRACK_TARGET"] = repr(config.target_loss)
    status: dict[str, Any] = {
        "status": "failed", "host": host, "study": config.study, "site": config.site,
        "job": config.job, "workload": "command", "model": shlex.join(command),
        "sample_unit": "samples", "metrics": {},  # the summary's figures: command/summary.py
        "config": {**config.model_dump(mode="json"), "command": command},
        "provenance": _provenance(jobenv, config, command),
    }  # fmt: skip
    status["provenance"]["rendezvous"] = f"{env.get('MASTER_ADDR')}:{env.get('MASTER_PORT')}"
    stop: dict[str, int | None] = {"signal": None}

    def on_signal(signum: int, _frame: Any) -> None:
        stop["signal"] = signum

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR2):
        signal.signal(sig, on_signal)
    rec.write("phase", phase="command_start", argv=command)
    started = time.time()
    code = 1
    try:
        with (
            open(folder / f"rank-{rank}.out", "ab") as out,
            open(folder / f"rank-{rank}.err", "ab") as err,
        ):
            try:
                proc = subprocess.Popen(
                    command, stdout=out, stderr=err, env=env, start_new_session=True
                )
            except FileNotFoundError:
                status["reason"] = f"command not found: {command[0]} (not on PATH of {host})"
                code = status["exit_code"] = 127
            except PermissionError:
                status["reason"] = f"command not executable: {command[0]}"
                code = status["exit_code"] = 126
            else:
                code = _wait(proc, config, t0, stop, status)
    finally:
        ended = time.time()
        status.update(
            started_at=started, ended_at=ended,
            start_s=round(started - t0, 4), end_s=round(ended - t0, 4),
            run_s=round(ended - started, 4),
            peak_rss_gib=round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20, 4),
        )  # fmt: skip
        if code == 0 and status.get("reason") is None:
            status["status"] = "ok"
        rec.write("end", status=status["status"], exit_code=status.get("exit_code"),
                  reason=status.get("reason"))  # fmt: skip
        write_status(folder, rank, status)
        rec.close()
        if status["status"] != "ok":
            print(f"rank {rank}: failed: {status.get('reason')}", file=sys.stderr)
        if rank == 0:
            _wait_for_statuses(folder, world)
            summarize_command(folder, world)
    return code


def _wait(
    proc: subprocess.Popen, config: CommandConfig, t0: float, stop: dict, status: dict
) -> int:
    """Wait for the command; stop it at the time limit or on a signal; sample its GPU memory."""
    smi = shutil.which("nvidia-smi")
    next_gpu = 0.0
    gpu_peak: float | None = None
    deadline = (
        t0 + config.time_limit - config.stop_margin if config.time_limit is not None else None
    )
    while proc.poll() is None:
        now = time.time()
        if smi and now >= next_gpu:
            used = _gpu_used_mib(smi, proc.pid)
            if used is not None:
                gpu_peak = max(gpu_peak or 0.0, used)
            next_gpu = now + GPU_POLL_S
        why = None
        if stop["signal"] is not None:
            why = f"stopped by {signal.Signals(stop['signal']).name}"
            status["terminated"] = True
        elif deadline is not None and now >= deadline:
            why = (
                f"ran past the job's time limit ({config.time_limit:g} s; a command that never "
                "starts training, e.g. waiting for its process group, ends here)"
            )
            status["terminated"] = status["timed_out"] = True
        if why is not None:
            status["reason"] = why
            _stop(proc)
            break
        time.sleep(POLL_S)
    rc = proc.wait()
    if gpu_peak is not None:
        status["peak_gpu_memory_gib"] = round(gpu_peak / 1024, 4)
    status["exit_code"] = rc
    if rc < 0:
        status["signal"] = signal.Signals(-rc).name
        status.setdefault("reason", f"the command was killed by {signal.Signals(-rc).name}")
    elif rc != 0:
        status.setdefault("reason", f"the command exited with status {rc}")
    return 0 if rc == 0 and "reason" not in status else (rc if rc > 0 else 128 - rc)


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the command's process group, SIGKILL after a grace period."""
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(KILL_GRACE_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)


def _gpu_used_mib(smi: str, pid: int) -> float | None:
    """GPU memory (MiB) that the command's processes use, as nvidia-smi reports it."""
    try:
        out = subprocess.run(
            [smi, "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=10,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    tree = _tree(pid)
    rows = [line.split(",")[:2] for line in out.splitlines() if "," in line]
    used = [
        float(m)
        for p, m in rows
        if p.strip().isdigit() and int(p) in tree and m.strip().replace(".", "").isdigit()
    ]
    return sum(used) if used else None


def _tree(root: int) -> set[int]:
    """``root`` and its descendants (from /proc)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
    tree, grew = {root}, True
    while grew:
        more = {p for p, pp in parents.items() if pp in tree} - tree
        grew = bool(more)
        tree |= more
    return tree


def _provenance(jobenv: JobEnvironment, config: CommandConfig, command: list[str]) -> dict:
    files = {}
    for arg in command[:4]:
        path = Path(arg)
        if path.suffix in (".py", ".sh") and path.is_file():
            import hashlib

            files[arg] = hashlib.sha256(path.read_bytes()).hexdigest()
    return {
        "hpcscale": __version__,
        "python": platform.python_version(),
        "engine": config.engine,
        "launcher": jobenv.launcher,
        "job_id": jobenv.job_id,
        "nodes": list(jobenv.nodes) or [socket.gethostname()],
        "rendezvous": f"{jobenv.master_addr}:{jobenv.master_port}",
        "command": command,
        "command_files_sha256": files,
        "site_digest": os.environ.get("HPCSCALE_SITE_DIGEST"),
        "image": os.environ.get("HPCSCALE_IMAGE"),
        "image_digest": os.environ.get("HPCSCALE_IMAGE_DIGEST"),
        "container": runtime_inside(os.environ),
    }


def _wait_for_statuses(folder: Path, world: int) -> None:
    deadline = time.time() + STATUS_WAIT_S
    while time.time() < deadline:
        if all((folder / f"rank-{r}.status.json").exists() for r in range(world)):
            return
        time.sleep(0.2)
