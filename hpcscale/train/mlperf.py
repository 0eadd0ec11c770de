"""MLPerf-style events through mlperf-logging's mllog, so MLPerf tooling can read a run.

Only rank 0 logs (as MLPerf reference implementations do); other ranks get a no-op logger.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any


class MLLog:
    def __init__(self, path: Path | None) -> None:
        self._log = None
        if path is None:
            return
        # mlperf-logging: the [torch] extra; a run without an event log needs none
        from mlperf_logging import mllog

        # A logger of our own that writes only the file (mllog's default also prints to stdout).
        logger = logging.getLogger(f"hpcscale.mllog.{path}")
        logger.setLevel(logging.INFO)
        logger.propagate = False
        logger.addHandler(logging.FileHandler(path))
        mllog.config(logger=logger, default_stack_offset=2)
        self._log = mllog.get_mllogger()
        self.c = mllog.constants

    def event(
        self, key: str, value: Any = None, time_s: float | None = None, **metadata: Any
    ) -> None:
        if self._log is None:
            return
        self._log.event(
            key=getattr(self.c, key),
            value=value,
            metadata=metadata or None,
            time_ms=None if time_s is None else time_s * 1000.0,
        )

    def start(
        self, key: str, value: Any = None, time_s: float | None = None, **metadata: Any
    ) -> None:
        if self._log is not None:
            self._log.start(
                key=getattr(self.c, key),
                value=value,
                metadata=metadata or None,
                time_ms=None if time_s is None else time_s * 1000.0,
            )

    def end(self, key: str, value: Any = None, **metadata: Any) -> None:
        if self._log is not None:
            self._log.end(key=getattr(self.c, key), value=value, metadata=metadata or None)
