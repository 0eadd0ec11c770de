from __future__ import annotations

import contextlib
import itertools
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hpcscale.sites import detect
from hpcscale.sites.models import Node

TESTS = Path(__file__).resolve().parent
GOLDEN = TESTS / "golden"

# A fixed machine for the `local` site, so golden files do not depend on where tests run.
FIXED_LOCAL_NODE = Node(
    cpu="Test CPU",
    arch="x86_64",
    sockets=1,
    cores_per_socket=8,
    threads_per_core=1,
    memory_gb=32,
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--regen-golden",
        action="store_true",
        help="rewrite golden files (job scripts, container recipes) instead of comparing",
    )


@pytest.fixture
def regen(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--regen-golden"))


@pytest.fixture
def fixed_local(monkeypatch: pytest.MonkeyPatch) -> Node:
    monkeypatch.setattr(detect, "detect_node", lambda: FIXED_LOCAL_NODE)
    return FIXED_LOCAL_NODE


def check_golden(path: Path, text: str, regen: bool) -> None:
    """Compare ``text`` with the golden file, or rewrite it under --regen-golden."""
    if regen:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return
    assert path.exists(), f"{path} missing; run pytest --regen-golden and review the diff"
    assert text == path.read_text(), f"{path} differs; review, then pytest --regen-golden"


FAKE_COMMANDS = (
    "sbatch",
    "scontrol",
    "srun",
    "sacct",
    "squeue",
    "scancel",
    "bsub",
    "bjobs",
    "bkill",
    "jsrun",
    "qsub",
    "qstat",
    "qdel",
    "mpirun",
    "ibrun",
    "aprun",
    "module",
)


class FakeScheduler:
    """Fake sbatch/bsub/qsub/... on PATH that record their calls and really run the jobs."""

    def __init__(self, state: Path) -> None:
        self.state = state

    def calls(self, cmd: str | None = None) -> list[dict]:
        import json

        path = self.state / "calls.jsonl"
        rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
        return [r for r in rows if cmd is None or r["cmd"] == cmd]


@pytest.fixture
def fake_scheduler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeScheduler]:

    bin_dir = tmp_path / "fakebin"
    state = tmp_path / "fakesched"
    bin_dir.mkdir()
    state.mkdir()
    script = bin_dir / "fakesched.py"
    script.write_text(f"#!{sys.executable}\n" + (TESTS / "fakesched.py").read_text())
    script.chmod(0o755)
    for name in FAKE_COMMANDS:
        (bin_dir / name).symlink_to(script)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKESCHED_DIR", str(state))
    # Each test's jobs get their own ids (a rendezvous port is derived from the job id: two
    # tests' job 1000 would share it if the first one's job were still alive).
    (state / "next_id").write_text(str(next(_JOB_IDS)))
    yield FakeScheduler(state)
    _end_jobs(state)


_JOB_IDS = itertools.count(1000 + os.getpid() % 50 * 1000, 100)


def _end_jobs(state: Path) -> None:
    """What a scheduler does at the end of an allocation: a job the test left running (its
    process group) is killed, so it cannot hold a port or a core into the next test."""
    import signal

    for pid_file in state.glob("job-*.pid"):
        with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
            os.killpg(int(pid_file.read_text()), signal.SIGKILL)


def tiny_site(folder: Path, name: str, workload: str, extra: str = "") -> Path:
    """A one-node, 2-rank Slurm site for end-to-end tests, in its own sites folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(
        "scheduler: {kind: slurm, exclusive: false}\nlauncher: {kind: srun}\n"
        "node: {cpu: test, arch: x86_64, sockets: 1, cores_per_socket: 2, memory_gb: 4}\n"
        "limits: {max_nodes: 1, max_walltime: '00:30:00'}\nworkers_per_node: 2\n"
        f"training: {{resolution: 300, model: jishnet-small, {workload}}}\n{extra}"
    )
    return folder


def tiny_events(folder: Path, n: int, seed: int) -> Path:
    from hpcscale.data.generate import generate

    generate(folder, n, resolution=300, seed=seed, workers=2)
    return folder


def cli(*args: str, cwd: Path | None = None, timeout: int = 600):  # type: ignore[no-untyped-def]
    """Run `python -m hpcscale ARGS` as a user would; returns the CompletedProcess."""
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "hpcscale", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


def rank_pids(job: Path) -> list[int]:
    """The PIDs of a submitted job's rank processes on this machine (submitit's rank command
    for the job's folder; not the launcher lines that carry the same words)."""
    import subprocess

    pattern = rf"^\S*python\S* -u -m submitit.core._submit {job}/submitit$"
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout
    return [int(pid) for pid in out.split()]
