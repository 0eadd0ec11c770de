"""Charliecloud's builder, ``ch-image``: build a Dockerfile into its storage (``CH_IMAGE_STORAGE``;
its build cache makes a rebuild after a source change take seconds), export the image as a
directory with ``ch-convert`` (what ``ch-run`` runs and ``ch-fromhost --nvidia`` writes into),
and digest that directory.

Debian's ``ch-image`` is a Python script run by the first ``python3`` on PATH; it needs ``lark``
and ``requests``, which Debian's ``python3`` has through the package's dependencies but a
virtual environment may lack, so it is run with Debian's interpreter when the first one fails.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Callable
from functools import cache
from pathlib import Path

from hpcscale.errors import UserError

_STEP = re.compile(r"^\s*\d+[.*] ")  # ch-image's "  4. RUN ..." / "  4* RUN ..." (cached)


def _env(path_first: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("USER", "root" if os.geteuid() == 0 else str(os.geteuid()))
    if path_first:
        env["PATH"] = f"{path_first}{os.pathsep}{env.get('PATH', '')}"
    return env


@cache
def _environment() -> dict[str, str] | None:
    """The environment in which ``ch-image --version`` works, or None."""
    if shutil.which("ch-image") is None:
        return None
    for first in (None, "/usr/bin"):
        env = _env(first)
        res = subprocess.run(["ch-image", "--version"], capture_output=True, env=env)
        if res.returncode == 0:
            return env
    return None


def usable() -> bool:
    return _environment() is not None


def run(args: list[str], what: str) -> str:
    env = _environment()
    if env is None:
        raise UserError("ch-image does not start here (apt-get install charliecloud-builders)")
    res = subprocess.run(args, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        tail = " / ".join((res.stderr or res.stdout).strip().splitlines()[-3:])
        raise UserError(f"{what} failed (exit {res.returncode}): {tail}")
    return res.stdout


def has(name: str) -> bool:
    """Whether ch-image's storage holds ``name`` (``ch-image list NAME`` would ask a registry
    too, so the whole list is read)."""
    return name in run(["ch-image", "list"], "ch-image list").split()


def import_base(tarball: Path, name: str | None = None) -> str:
    """``tarball`` in ch-image's storage as ``name`` (default: from its content); returns it."""
    if name is None:
        sha = hashlib.sha256()
        with open(tarball, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                sha.update(chunk)
        name = f"hpcscale-base:{sha.hexdigest()[:16]}"
    if not has(name):
        run(["ch-image", "import", str(tarball), name], f"ch-image import {tarball}")
    return name


def build(context: Path, recipe_name: str, tag: str, say: Callable[[str], None]) -> list[str]:
    """``ch-image build`` of ``context``; progress lines through ``say``. Returns the command.

    A build killed part-way (Ctrl-C, a job's time limit) can leave ch-image's copy of ``tag``
    changed but not committed; the next build that has to move that copy to an earlier state
    then fails in ``git checkout``. That copy is only a checkout of the build cache, so it is
    deleted and the build run once more: the cache (its reflog included) still holds every
    layer, so only the steps that changed run again."""
    # Files over 32 MiB (the torch wheel, its libraries) stay out of the build cache's git.
    command = ["ch-image", "build", "--force", "--cache-large", "32", "-t", tag,
               "-f", str(context / recipe_name), str(context)]  # fmt: skip
    try:
        _build_once(command, say)
    except StaleCopy:
        say(
            f"ch-image's copy of {tag} was left half-changed by an earlier build (interrupted?): "
            f"`ch-image delete {tag}` and building again from the build cache"
        )
        run(["ch-image", "delete", tag], f"ch-image delete {tag}")
        _build_once(command, say)
    return command


class StaleCopy(UserError):
    """ch-image could not move its copy of the image to a cached state (``git checkout``)."""


def _build_once(command: list[str], say: Callable[[str], None]) -> None:
    tail: list[str] = []
    step = ""
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_environment()
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            tail = [*tail[-19:], line.rstrip()]
            if _STEP.match(line):
                step = line.strip()
                say(step[:160])
    if proc.returncode != 0:
        lines = [t for t in tail if t.strip()]
        message = (
            f"ch-image build failed (exit {proc.returncode}) at {step[:120]!r}: "
            + " / ".join(lines[-3:])
        )
        stale = bool(lines) and "git checkout" in lines[-1]
        stale = stale and any("updating existing image" in t for t in tail)
        raise (StaleCopy if stale else UserError)(message)


def export(tag: str, out: Path) -> None:
    """The image as the directory ``out``: exported beside it, then moved in place."""
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = out.parent / f".{out.name}.exporting"
    old = out.parent / f".{out.name}.old"
    for leftover in (scratch, old):
        if leftover.exists():
            shutil.rmtree(leftover)
    run(["ch-convert", "-i", "ch-image", tag, str(scratch)], f"ch-convert {tag}")
    if out.exists():
        os.rename(out, old)
    os.rename(scratch, out)
    shutil.rmtree(old, ignore_errors=True)


def tree_digest(root: Path) -> str:
    """sha256 over the sorted tree: each entry's path, type, mode and content (a link's target).
    The same files give the same digest wherever and whenever they were exported."""
    sha = hashlib.sha256()
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted([*dirs, *files]):
            path = Path(folder, name)
            info = path.lstat()
            rel = str(path.relative_to(root))
            mode = stat.S_IMODE(info.st_mode)
            if stat.S_ISLNK(info.st_mode):
                sha.update(f"L {rel} {os.readlink(path)}\n".encode())
            elif stat.S_ISDIR(info.st_mode):
                sha.update(f"D {rel} {mode:o}\n".encode())
            elif stat.S_ISREG(info.st_mode):
                sha.update(f"F {rel} {mode:o} {file_sha(path)}\n".encode())
            else:
                sha.update(f"O {rel} {stat.S_IFMT(info.st_mode):o}\n".encode())
    return f"sha256:{sha.hexdigest()}"


def file_sha(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            sha.update(chunk)
    return sha.hexdigest()


def size_bytes(root: Path) -> int:
    return sum(p.lstat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())
