"""``hpcscale container build``: assemble the build context (``hpcscale.containers.context``), run
the builder that is installed on the site's recipe and record the image's digest beside it
(``IMAGE.sha256``, which jobs put in their provenance, and ``IMAGE.json`` with how it was made).

``--data DIR`` copies a data set into the image for ``--data-placement image``
(``hpcscale.containers.imagedata``); the record says which.

Builders: ``ch-image`` (Charliecloud; a directory image for ``ch-run``), ``apptainer`` and
``singularity`` (a SIF file), ``docker`` and ``podman`` (an image in their store; its ID is the
digest). The site's runtime picks the default: charliecloud builds with ch-image, apptainer and
singularity with themselves, the others with docker or podman.

A recipe's base that no registry can deliver (none reachable) is replaced by a local one: a
Debian root file system that ``mmdebstrap`` makes (``hpcscale.containers.debbase``), or the
tarball or builder image given with ``--base``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from hpcscale.containers import chimage, debbase, imagedata
from hpcscale.containers.chimage import file_sha, size_bytes
from hpcscale.containers.context import assemble
from hpcscale.containers.recipe import LOCAL_BASE, is_local, recipe
from hpcscale.containers.runtimes.registry import RUNTIMES
from hpcscale.errors import UserError
from hpcscale.fmt import plural
from hpcscale.fsutil import atomic_write, cache_root
from hpcscale.sites.models import Site

BUILDERS = ("apptainer", "singularity", "docker", "podman", "ch-image")
INSTALL = {
    "ch-image": "install Charliecloud (apt-get install charliecloud charliecloud-builders)",
    "apptainer": "install Apptainer (https://apptainer.org)",
}


def _usable(builder: str) -> bool:
    """On PATH; docker and podman also need to answer (a bare client cannot build), ch-image
    to start (it needs lark and requests)."""
    if shutil.which(builder) is None:
        return False
    if builder == "ch-image":
        return chimage.usable()
    if builder in ("docker", "podman"):
        return subprocess.run([builder, "info"], capture_output=True).returncode == 0
    return True


def candidates(site: Site, builder: str | None) -> tuple[str, ...]:
    if builder:
        return (builder,)
    return RUNTIMES.get(site.container.runtime).builders


def default_out(site: Site, builder: str) -> Path:
    image = site.container.image
    if image and "$" not in image and "://" not in image and ":" not in image:
        return Path(image)
    return Path(f"hpcscale-{site.name}" + ("" if builder == "ch-image" else ".sif"))


def build_command(builder: str, site: Site, recipe_path: Path, out: Path) -> list[str]:
    if builder in ("docker", "podman"):
        return [builder, "build", "-f", str(recipe_path), "-t", f"hpcscale-{site.name}", "."]
    fakeroot = ["--fakeroot"] if os.geteuid() != 0 else []
    return [builder, "build", *fakeroot, str(out), str(recipe_path)]


def build(
    site: Site,
    out: Path | None = None,
    builder: str | None = None,
    base: str | None = None,
    say: Callable[[str], None] = lambda line: None,
    data: Path | None = None,
) -> dict:
    """Build ``site``'s image into ``out``; returns the record written to ``OUT.json``.
    ``data``: a data set copied into the image (``imagedata``; ``--data-placement image``)."""
    if data is not None:
        imagedata.check_folder(data)  # before anything slow
    found = [b for b in candidates(site, builder) if _usable(b)]
    if not found:
        raise _no_builder(site, builder, out)
    chosen = found[0]
    out = Path(out or default_out(site, chosen)).absolute()
    fmt = "singularity" if chosen in ("apptainer", "singularity") else "docker"
    recipe_name = "hpcscale.def" if fmt == "singularity" else "Dockerfile"
    text = recipe(site, fmt, data=data is not None)  # type: ignore[arg-type]
    started = time.monotonic()
    with _context_folder(site) as context:
        base_note = None
        if chosen == "ch-image" or base is not None:
            text, base_note = _with_base(text, chosen, base, say)
        held = None
        if data is not None:
            say(f"data set: copying {data} into the context (the image's {imagedata.IMAGE_DATA})")
            held = imagedata.copy_into(context, data)
            say(f"data set: {plural(held['files'], 'file')}, {held['bytes'] / 2**20:.1f} MiB")
        say(f"context: {context} (hpcscale source{', wheels' if is_local(site) else ''})")
        inputs = assemble(context, recipe_name, text, is_local(site), say)
        if held is not None:  # the data set's contents are inputs too
            inputs = hashlib.sha256(f"{inputs} {held['digest']}".encode()).hexdigest()
        previous = imagedata.image_record(str(out)) or {}
        if previous.get("inputs") == inputs and out.exists() and previous.get("digest"):
            say(f"up to date: {out} (same recipe, source and wheels as its build)")
            return previous
        say(f"building with {chosen} ({recipe_name}, {len(text.splitlines())} lines)")
        command, digest = _run_builder(chosen, site, context, recipe_name, out, say)
    record = {
        "site": site.name,
        "image": str(out),
        "digest": digest,
        "builder": chosen,
        "command": command,
        "base": base_note,
        "recipe": recipe_name,
        "inputs": inputs,
        "data": held,
        "build_s": round(time.monotonic() - started, 1),
        "size_bytes": _size(out),
        "built_at": time.time(),
    }
    atomic_write(Path(f"{out}.sha256"), digest + "\n")
    atomic_write(Path(f"{out}.json"), json.dumps(record, indent=2) + "\n")
    atomic_write(Path(f"{out}.{'def' if fmt == 'singularity' else 'Dockerfile'}"), text)
    return record


@contextlib.contextmanager
def _context_folder(site: Site) -> Iterator[Path]:
    """The build context's folder: the same path for every build of a site on this machine
    (ch-image's cache keys a COPY on its sources' paths and metadata), emptied before and after,
    one build of the site at a time (an flock waits for another)."""
    base = Path(tempfile.gettempdir()) / f"hpcscale-context-{site.name}-{os.geteuid()}"
    with open(f"{base}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        shutil.rmtree(base, ignore_errors=True)
        base.mkdir(mode=0o700)
        try:
            yield base
        finally:
            shutil.rmtree(base, ignore_errors=True)


def _no_builder(site: Site, builder: str | None, out: Path | None) -> UserError:
    wanted = candidates(site, builder)
    first = wanted[0]
    hint = INSTALL.get(first, f"install {first}")
    out = Path(out or default_out(site, first))
    suffix = "def" if first in ("apptainer", "singularity") else "Dockerfile"
    command = shlex.join(build_command(first, site, Path(f"{out}.{suffix}"), out))
    if first == "ch-image":
        command = f"ch-image build --force -t hpcscale-{site.name} -f Dockerfile CONTEXT"
    return UserError(
        f"no {' or '.join(wanted)} that works here (on PATH, and a docker or podman that "
        f"answers) to build site {site.name}'s image; {hint}, or build where one is, after "
        f"`hpcscale container render --site {site.name}`, in a folder holding the hpcscale "
        f"source as src/: {command}"
    )


def _with_base(
    text: str, builder: str, base: str | None, say: Callable[[str], None]
) -> tuple[str, str | None]:
    """The recipe with its base replaced by a local one where none can be fetched."""
    first = text.splitlines()[0]
    wanted = first.split(None, 1)[1] if first.startswith("FROM ") else None
    if base is None:
        if wanted != LOCAL_BASE or debbase.registry_reachable():
            return text, None
        say(f"no container registry reachable: a local Debian base replaces {wanted}")
        if builder != "ch-image":
            raise UserError(
                f"no registry reachable for {wanted}; give --base (with --builder ch-image)"
            )
        name = debbase.IMAGE_NAME
        if chimage.has(name):
            say(f"base: {name} (in ch-image's storage)")
        else:
            tarball = debbase.base_tarball(cache_root() / "containers", say)
            chimage.import_base(tarball, name)
            say(f"base: {tarball} imported as {name}")
        return _from(text, name), f"{name} (mmdebstrap {debbase.SUITE})"
    if builder != "ch-image":
        raise UserError(f"--base {base}: only the ch-image builder takes a local base here")
    if Path(base).is_file():
        name = chimage.import_base(Path(base))
        say(f"base: {base} imported as {name}")
    elif not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/:@-]*", base):
        raise UserError(f"--base {base!r}: give a root file system tarball or an image name")
    else:
        name = base
    return _from(text, name), base


def _from(text: str, name: str) -> str:
    lines = text.splitlines()
    if not lines or not lines[0].startswith("FROM "):
        raise UserError("a local base works with Dockerfile recipes (the ch-image builder's)")
    return "\n".join([f"FROM {name}", *lines[1:]]) + "\n"


def _run_builder(
    builder: str,
    site: Site,
    context: Path,
    recipe_name: str,
    out: Path,
    say: Callable[[str], None],
) -> tuple[list[str], str]:
    if builder == "ch-image":
        tag = f"hpcscale-{site.name}"
        command = chimage.build(context, recipe_name, tag, say)
        say(f"exporting {tag} to {out} (ch-convert)")
        _forget_record(out)
        chimage.export(tag, out)
        say("digest of the image directory")
        return command, chimage.tree_digest(out)
    scratch = out.parent / f".{out.name}.building"
    command = build_command(builder, site, context / recipe_name, scratch)
    result = subprocess.run(command, capture_output=True, text=True, cwd=context)
    if result.returncode != 0:
        scratch.unlink(missing_ok=True)
        tail = " / ".join(result.stderr.strip().splitlines()[-3:])
        raise UserError(f"{shlex.join(command)} failed (exit {result.returncode}): {tail}")
    if builder in ("docker", "podman"):
        return command, _store_digest(builder, site)
    _forget_record(out)
    os.replace(scratch, out)
    return command, f"sha256:{file_sha(out)}"


def _forget_record(out: Path) -> None:
    """Remove the old image's record before the image is replaced: an export or digest cut
    short leaves an image without a record (a build is asked for), never a record of another
    image (whose data set a study would then trust)."""
    for suffix in (".sha256", ".json"):
        Path(f"{out}{suffix}").unlink(missing_ok=True)


def _store_digest(builder: str, site: Site) -> str:
    return subprocess.run(
        [builder, "inspect", "--format", "{{.Id}}", f"hpcscale-{site.name}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def _size(out: Path) -> int | None:
    if out.is_file():
        return out.stat().st_size
    if out.is_dir():
        return size_bytes(out)
    return None
