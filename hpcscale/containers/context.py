"""The build context every recipe expects (``hpcscale.containers.recipe``): ``src/``, the hpcscale
source; for a ``container.recipe: local`` site also ``build/``: the CPU torch wheel this machine
runs (``pip download`` of the installed version, from pip's own configured sources), the cached
Horovod wheel that ``scripts/build-horovod.sh`` made, ``requirements.txt`` pinned to the versions
installed here (so that a rank in the image unpickles what the submitting side pickled) and the
CA bundle pip trusts here (``ca.crt``: pip in the image reaches PyPI through the same proxy)."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import ssl
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from hpcscale.containers.recipe import HOROVOD, LOCAL_PYTHON, PY_PACKAGES
from hpcscale.errors import UserError

# Pinned too: submitit pickles the rank function with cloudpickle on the submitting side;
# hatchling builds hpcscale in the image without a network (--no-build-isolation).
PINNED = [*PY_PACKAGES, "cloudpickle", "hatchling"]
FIXED_MTIME = 946684800  # 2000-01-01
_SKIP = {".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache", "studies", "runs"}


def source_root() -> Path:
    """The hpcscale source tree the image installs: this package's checkout."""
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file() and (root / "scripts" / "build-horovod.sh").is_file():
        return root
    cwd = Path.cwd()
    if (cwd / "pyproject.toml").is_file() and (cwd / "hpcscale").is_dir():
        return cwd
    raise UserError(
        "run `hpcscale container build` in the hpcscale source folder (or install hpcscale "
        "from it with pip install -e): the image installs that source"
    )


def source_files(root: Path) -> list[str]:
    """Tracked and new files (git's view, ignoring what .gitignore ignores), else a walk."""
    if (root / ".git").exists():
        res = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z", "-co", "--exclude-standard"],
            capture_output=True,
        )
        if res.returncode == 0:
            names = [n for n in res.stdout.decode().split("\0") if n]
            return sorted(n for n in names if (root / n).is_file())
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in _SKIP and not d.endswith(".egg-info")]
        found += [str(Path(folder, f).relative_to(root)) for f in files]
    return sorted(found)


def assemble(
    context: Path, recipe_name: str, recipe_text: str, local: bool, say: Callable[[str], None]
) -> str:
    """Write the context into the empty folder ``context``; return a digest of its inputs
    (recipe, source files, wheels by name and size) that tells a rebuild from a no-op."""
    root = source_root()
    sha = hashlib.sha256(recipe_text.encode())
    src = context / "src"
    for name in source_files(root):
        target = src / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, target)
        sha.update(name.encode() + b"\0" + target.read_bytes())
    (context / recipe_name).write_text(recipe_text)
    if local:
        build = context / "build"
        wheels = build / "wheels"
        wheels.mkdir(parents=True)
        _torch_wheel(wheels, say)
        _horovod_wheel(root, wheels, say)
        (build / "requirements.txt").write_text("".join(f"{p}\n" for p in pins()))
        shutil.copyfile(ca_bundle(), build / "ca.crt")
        for path in sorted(build.rglob("*")):
            if path.is_file():
                sha.update(f"{path.relative_to(context)}:{path.stat().st_size}".encode())
        sha.update((build / "requirements.txt").read_bytes())
    stable_mtimes(context)
    return sha.hexdigest()


def stable_mtimes(context: Path) -> None:
    """Modification times from content: ch-image's cache keys a COPY on its sources' paths,
    modes, sizes and mtimes (not their content), so a fresh download or a fresh clone would miss
    it every time, and an edit of the same size with a kept mtime would wrongly hit it. Folders
    get one fixed time (their entries carry their own)."""
    for path in [*sorted(context.rglob("*"), reverse=True), context]:
        if path.is_symlink():
            continue
        stamp = FIXED_MTIME
        if path.is_file():
            stamp += int(hashlib.sha256(path.read_bytes()).hexdigest()[:7], 16)
        os.utime(path, (stamp, stamp))


def pins() -> list[str]:
    """PINNED at the versions installed here (unpinned where one is not installed)."""
    lines = []
    for name in PINNED:
        requirement = name.split(">")[0].split("=")[0].strip("'")
        try:
            lines.append(f"{requirement}=={importlib.metadata.version(requirement)}")
        except importlib.metadata.PackageNotFoundError:
            lines.append(name)
    return lines


def ca_bundle() -> str:
    """The CA bundle pip trusts on this machine."""
    ssl_file = ssl.get_default_verify_paths().cafile
    for candidate in (
        os.environ.get("PIP_CERT"),
        os.environ.get("REQUESTS_CA_BUNDLE"),
        "/etc/ssl/certs/ca-certificates.crt",
        ssl_file,
    ):
        if candidate and Path(candidate).is_file():
            return candidate
    raise UserError("no CA bundle found for pip in the image; set PIP_CERT to one")


def _torch_wheel(wheels: Path, say: Callable[[str], None]) -> None:
    try:
        version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        raise UserError(
            "torch is not installed here; the local image takes the torch wheel this machine "
            "runs: pip install torch==2.13.0 first"
        ) from None
    say(f"torch {version}: the wheel this machine runs (pip download, from pip's sources)")
    command = [
        sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
        "--python-version", LOCAL_PYTHON, "-d", str(wheels), f"torch=={version}",
    ]  # fmt: skip
    res = subprocess.run(command, capture_output=True, text=True)
    if res.returncode != 0 or not list(wheels.glob("torch-*.whl")):
        tail = " / ".join(res.stderr.strip().splitlines()[-2:])
        raise UserError(
            f"could not get the torch {version} wheel for Python {LOCAL_PYTHON} with pip "
            f"download: {tail or 'no wheel'}"
        )


def horovod_cache() -> Path:
    return Path(os.environ.get("HPCSCALE_CI_CACHE") or Path.home() / ".cache" / "hpcscale-ci")


def _horovod_wheel(root: Path, wheels: Path, say: Callable[[str], None]) -> None:
    """The CPU Horovod wheel from scripts/build-horovod.sh's cache (built there first if
    missing: about 3 minutes on 2 cores); the script in the image finds and installs it."""
    tag = "cp" + LOCAL_PYTHON.replace(".", "")
    pattern = f"horovod-{HOROVOD}-{tag}-*.whl"
    cached = sorted(horovod_cache().glob(pattern))
    if not cached:
        here = f"cp{sys.version_info[0]}{sys.version_info[1]}"
        if here != tag:
            raise UserError(
                f"no cached Horovod wheel for Python {LOCAL_PYTHON} ({horovod_cache()}/{pattern}) "
                f"and this Python is not {LOCAL_PYTHON}: build one with that Python: bash "
                f"scripts/build-horovod.sh --no-install --python python{LOCAL_PYTHON}"
            )
        say("Horovod: no cached wheel; scripts/build-horovod.sh --no-install (about 3 min)")
        script = root / "scripts" / "build-horovod.sh"
        res = subprocess.run(
            ["bash", str(script), "--no-install", "--python", sys.executable],
            capture_output=True,
            text=True,
        )
        if res.returncode != 0:
            tail = " / ".join(res.stderr.strip().splitlines()[-2:])
            raise UserError(f"scripts/build-horovod.sh failed (exit {res.returncode}): {tail}")
        cached = sorted(horovod_cache().glob(pattern))
    say(f"Horovod: {cached[0].name} from {horovod_cache()}")
    shutil.copy2(cached[0], wheels / cached[0].name)
