"""``hpcscale container build``: run apptainer, singularity or docker on the rendered recipe and
record the image's sha256 digest beside it (``IMAGE.sha256``), which jobs put in provenance."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path

from hpcscale.containers.recipe import recipe
from hpcscale.errors import UserError
from hpcscale.fsutil import atomic_write
from hpcscale.sites.models import Site

BUILDERS = ("apptainer", "singularity", "docker")


def _usable(builder: str) -> bool:
    """On PATH, and for docker also a reachable daemon (a bare client cannot build)."""
    if shutil.which(builder) is None:
        return False
    if builder != "docker":
        return True
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


def build_command(builder: str, site: Site, recipe_path: Path, out: Path) -> list[str]:
    if builder == "docker":
        return ["docker", "build", "-f", str(recipe_path), "-t", f"hpcscale-{site.name}", "."]
    fakeroot = ["--fakeroot"] if os.geteuid() != 0 else []
    return [builder, "build", *fakeroot, str(out), str(recipe_path)]


def build(site: Site, out: Path | None = None, builder: str | None = None) -> dict:
    """Build ``site``'s image from the current folder (the hpcscale source, copied into it)."""
    if not Path("pyproject.toml").exists() or not Path("hpcscale").is_dir():
        raise UserError(
            "run `hpcscale container build` in the hpcscale source folder: the "
            "recipe copies it into the image"
        )
    found = [b for b in ([builder] if builder else BUILDERS) if _usable(b)]
    fmt = "docker" if (found[:1] == ["docker"]) else "singularity"
    out = Path(out or f"hpcscale-{site.name}.sif")
    recipe_path = Path(f"{out}.{'Dockerfile' if fmt == 'docker' else 'def'}")
    if not found:
        command = shlex.join(build_command("apptainer", site, recipe_path, out))
        raise UserError(
            f"no {builder or 'apptainer, singularity or docker'} on PATH; install Apptainer "
            f"(https://apptainer.org) or build where one is, after `hpcscale container render "
            f"--site {site.name} > {recipe_path}`: {command}"
        )
    atomic_write(recipe_path, recipe(site, fmt))  # type: ignore[arg-type]
    command = build_command(found[0], site, recipe_path, out)
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        tail = " / ".join(result.stderr.strip().splitlines()[-3:])
        raise UserError(f"{shlex.join(command)} failed (exit {result.returncode}): {tail}")
    digest = _digest(found[0], site, out)
    record = {
        "site": site.name,
        "image": str(out),
        "digest": digest,
        "builder": found[0],
        "command": command,
        "recipe": str(recipe_path),
        "built_at": time.time(),
    }
    atomic_write(Path(f"{out}.sha256"), digest + "\n")
    atomic_write(Path(f"{out}.json"), json.dumps(record, indent=2) + "\n")
    return record


def _digest(builder: str, site: Site, out: Path) -> str:
    if builder == "docker":
        image_id = subprocess.run(
            ["docker", "inspect", "--format", "{{.Id}}", f"hpcscale-{site.name}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return image_id
    sha = hashlib.sha256()
    with open(out, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            sha.update(chunk)
    return f"sha256:{sha.hexdigest()}"


def recorded_digest(image: str) -> str | None:
    """The digest ``build`` recorded beside an image, if any (read by the training core)."""
    path = Path(os.path.expandvars(image) + ".sha256")
    return path.read_text().strip() if path.exists() else None
