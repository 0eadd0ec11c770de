"""Atomic file writes (manifests, summaries, scripts never half-written), the folder lock
that keeps two writers of one study from losing each other's changes, and hpcscale's cache
folder."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hpcscale.errors import UserError


def cache_root() -> Path:
    """hpcscale's cache (generated data sets, base images, logs): $HPCSCALE_CACHE, else
    ~/.cache/hpcscale."""
    return Path(os.environ.get("HPCSCALE_CACHE") or Path.home() / ".cache" / "hpcscale")


def atomic_write(path: Path, text: str, mode: int = 0o644) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same folder and ``os.replace``
    (with fsync): readers see the old file or the new one, never a part. An error names
    ``path`` and leaves no temporary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.filename is None:  # a failed write() names no file: name the one being written
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


LOCK_NAME = ".lock"


@contextmanager
def folder_lock(folder: Path, command: str, wait_s: float = 60.0) -> Iterator[None]:
    """Hold ``folder``'s write lock (``flock`` on ``folder/.lock``) for the block.

    Every command that changes a study holds it around each change (read the manifest, change
    it, write it back), so two writers never lose each other's jobs. A second writer waits up to
    ``wait_s`` seconds, saying once who holds the lock, then refuses with one line. Waiting is
    fair: a waiter leaves a ``.lock.wait.PID`` file, and a process about to take the lock again
    (``submit`` takes it once per job) first lets such waiters go. The kernel drops the lock
    when its holder exits, however it exits: there is no stale lock to clean up by hand.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    mine = folder / f"{LOCK_NAME}.wait.{os.getpid()}"
    deadline = time.monotonic() + wait_s
    while _other_waiters(folder, mine) and time.monotonic() < deadline:
        time.sleep(0.02)
    with open(path, "a+") as fh:
        told = False
        try:
            while True:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    holder = _holder(path)
                    if time.monotonic() >= deadline:
                        raise UserError(
                            f"{folder} is busy: {holder} has been changing it for over "
                            f"{wait_s:.0f} s; try again when it has finished"
                        ) from None
                    if not told:
                        mine.touch()
                        print(f"waiting for {folder}: {holder} is changing it", file=sys.stderr)
                        told = True
                    time.sleep(0.02)
        finally:
            mine.unlink(missing_ok=True)
        try:
            fh.seek(0)
            fh.truncate()
            holder = {"command": command, "pid": os.getpid(), "host": socket.gethostname()}
            fh.write(json.dumps(holder))
            fh.flush()
            yield
        finally:
            fh.seek(0)
            fh.truncate()
            fcntl.flock(fh, fcntl.LOCK_UN)


def _other_waiters(folder: Path, mine: Path) -> bool:
    """Whether another live process is waiting for ``folder``'s lock."""
    for wait in folder.glob(f"{LOCK_NAME}.wait.*"):
        if wait == mine:
            continue
        try:
            os.kill(int(wait.name.rsplit(".", 1)[1]), 0)
        except (ValueError, ProcessLookupError):
            wait.unlink(missing_ok=True)  # its process is gone
            continue
        except PermissionError:
            pass  # alive, another user's
        return True
    return False


def _holder(path: Path) -> str:
    """Who holds the lock, as its holder wrote it."""
    try:
        info = json.loads(path.read_text() or "{}")
        return f"`{info['command']}` (pid {info['pid']} on {info['host']})"
    except (OSError, ValueError, KeyError):
        return "another hpcscale command"
