"""The callable submitit pickles for a job that runs a training command on every rank."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hpcscale.envref import expand_refs


@dataclass
class CommandTask:
    argv: list[str]  # arguments of `python -m hpcscale.command`: OPTIONS -- CMD ARGS...

    def __call__(self) -> int:
        from hpcscale.command.config import parse
        from hpcscale.command.rank import run
        from hpcscale.train.entry import process_start_time

        config, command = parse(expand_refs(self.argv))
        rc = run(config, command, process_start_time())
        if rc != 0:
            summary = Path(config.out) / "summary.json"
            raise RuntimeError(f"the command failed (exit {rc}); see {summary}")
        return rc
