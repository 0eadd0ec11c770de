"""A Debian bookworm root file system built from Debian's own packages with ``mmdebstrap``: the
base of this machine's image when no container registry is reachable. Cached as a tarball (about
225 MB, half a minute to make) under hpcscale's cache and reused."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from hpcscale.errors import UserError

SUITE = "bookworm"
PACKAGES = ["ca-certificates", "python3", "python3-venv"]
REGISTRY = "https://registry-1.docker.io/v2/"
# The base's name in a builder's storage: made once per storage (`ch-image delete` renews it).
IMAGE_NAME = f"hpcscale-base:{SUITE}-minbase-python3"


def registry_reachable(url: str = REGISTRY, timeout_s: float = 5.0) -> bool:
    """Whether a container registry answers at all (401 is an answer)."""
    try:
        urllib.request.urlopen(url, timeout=timeout_s)
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False
    return True


def base_tarball(cache: Path, say: Callable[[str], None]) -> Path:
    """The cached base tarball, made first if missing (built beside it, then moved in place)."""
    name = f"debian-{SUITE}-minbase-{'-'.join(p.replace('python3-', 'py') for p in PACKAGES)}.tar"
    target = cache / name
    if target.is_file():
        say(f"base: {target} (cached)")
        return target
    if shutil.which("mmdebstrap") is None:
        raise UserError(
            "no container registry is reachable and mmdebstrap is not installed to make a "
            "Debian base here: apt-get install mmdebstrap, or give --base TARBALL"
        )
    cache.mkdir(parents=True, exist_ok=True)
    say(f"base: mmdebstrap {SUITE} (minbase + {', '.join(PACKAGES)}) into {target}")
    scratch = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=cache))
    command = [
        "mmdebstrap", "--quiet", "--variant=minbase", f"--include={','.join(PACKAGES)}",
        SUITE, str(scratch / "base.tar"),
    ]  # fmt: skip
    try:
        res = subprocess.run(command, capture_output=True, text=True)
        if res.returncode != 0:
            tail = " / ".join(res.stderr.strip().splitlines()[-3:])
            raise UserError(f"mmdebstrap failed (exit {res.returncode}): {tail}")
        os.replace(scratch / "base.tar", target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target
