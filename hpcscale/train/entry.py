"""The rank function that submitit pickles: every task of a job calls ``TrainTask()``.

Job scripts run ``python -u -m submitit.core._submit FOLDER`` on every rank; that loads this
callable and calls it, so submission, requeue and results stay submitit's, and the training core
is the same one ``python -m hpcscale.train`` runs.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import submitit

from hpcscale.envref import expand_refs
from hpcscale.train.config import parse


@dataclass
class TrainTask:
    argv: list[str]  # arguments of `python -m hpcscale.train`

    def __call__(self) -> int:
        # torch (through the loop and checkpoint) on the rank only: the submitting process
        # pickles this task without importing it
        from hpcscale.train.checkpoint import REQUEUE_EXIT
        from hpcscale.train.loop import run

        core, wconfig = parse(expand_refs(self.argv))
        rc = run(core, wconfig, process_start_time())
        if rc == REQUEUE_EXIT:
            requeue(rc)
        if rc != 0:
            summary = Path(core.out) / "summary.json"
            raise RuntimeError(f"training failed (exit {rc}); see {summary}")
        return rc

    def checkpoint(self) -> object:
        """submitit's checkpoint hook (its USR2 handler calls it before requeueing): the same
        task again; the training core resumes from the job's own checkpoint.pt."""
        return submitit.helpers.DelayedSubmission(self)


def requeue(code: int = 3) -> None:
    """After the checkpoint, hand USR2 back to submitit's handler: on rank 0 it requeues the job
    (counting timeouts) and ends the process; the other ranks leave without a result, so that
    submitit waits for the next segment."""
    from hpcscale.train.checkpoint import hand_over  # imports torch: see TrainTask.__call__

    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the scheduler ends this segment now
    hand_over()
    sys.exit(code)


def process_start_time() -> float:
    """This process's start, from /proc (the kernel's clock ticks since boot), else now."""
    try:
        fields = Path(f"/proc/{os.getpid()}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[19])  # starttime, the 22nd field; fields[0] is the 3rd
        boot = next(
            int(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime")
        )
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()
