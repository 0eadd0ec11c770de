"""A data set inside a site's image, for ``--data-placement image``: ``hpcscale container build
--site S --data DIR`` copies DIR into the image at ``IMAGE_DATA`` (a layer after hpcscale's own,
so a new data set rebuilds only it) and records what it copied in the image's record
(``IMAGE.json``: the folder, its files, bytes and a digest of their contents). A study that asks
for the placement is checked against that record before any job is written (``check``): the
site must run its ranks in that image, and the image must hold the ``--data`` the study names,
as it is now. Its ranks then read ``IMAGE_DATA`` inside the container, not the shared copy, which
is therefore not bound into it.

No torch here: plain file operations.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpcscale.errors import UserError
from hpcscale.fmt import plural

if TYPE_CHECKING:
    from hpcscale.sites.models import Site

IMAGE_DATA = "/opt/hpcscale-data"  # where the data set lies inside the image
CONTEXT_NAME = "data"  # its folder in the build context


def files(data: Path) -> list[Path]:
    """The data set's files, by relative path (what the image gets)."""
    return sorted(p.relative_to(data) for p in data.rglob("*") if p.is_file())


def describe(data: Path) -> dict[str, Any]:
    """The folder's path, file count and size: what ``check`` compares without reading it."""
    data = data.absolute()
    names = files(data)
    return {
        "source": str(data),
        "files": len(names),
        "bytes": sum((data / n).stat().st_size for n in names),
    }


def check_folder(data: Path) -> None:
    """``data`` must be a data set's folder (its manifest.json beside the shards)."""
    if not data.is_dir():
        raise UserError(f"--data {data}: no such folder (give the data set's folder)")
    if not (data / "manifest.json").is_file():
        raise UserError(
            f"--data {data}: no manifest.json there, so not a data set's folder (the folder "
            "`hpcscale data generate --out` wrote)"
        )


def copy_into(context: Path, data: Path) -> dict[str, Any]:
    """Copy ``data`` into the build context (``CONTEXT_NAME``); its record, with a digest of the
    files' names and contents (which the image's inputs digest includes)."""
    check_folder(data)
    names = files(data)
    sha = hashlib.sha256()
    target = context / CONTEXT_NAME
    for name in names:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data / name, target / name)
        sha.update(str(name).encode() + b"\0")
        with open(target / name, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                sha.update(block)
    return {**describe(data), "digest": f"sha256:{sha.hexdigest()}", "path": IMAGE_DATA}


def image_record(image: str) -> dict[str, Any] | None:
    """The record ``hpcscale container build`` wrote beside ``image`` (``IMAGE.json``), if any."""
    try:
        return json.loads(Path(os.path.expandvars(image).rstrip("/") + ".json").read_text())
    except (OSError, ValueError):
        return None


FLAG = "--data-placement image"


def check_site(site: Site, placements: Iterable[str]) -> None:
    """Refuse ``--data-placement image`` (in any job of the study) on a site whose ranks run
    in no image, before any data is made."""
    container = site.container
    if "image" in set(placements) and (
        not container.enabled or container.runtime == "none" or not container.image
    ):
        raise UserError(
            f"{FLAG}: site {site.name} runs its ranks without a container image; the ranks "
            "read the data set baked into the site's image (a site with container.enabled and "
            "an image built with `hpcscale container build --data DIR`), or use "
            "--data-placement shared or node-local"
        )


def check(site: Site, data: str, placements: Iterable[str]) -> None:
    """Refuse ``--data-placement image`` (in any job of the study) where its ranks would not
    find ``data`` inside their image, in one line naming what to do."""
    placements = list(placements)
    if "image" not in placements:
        return
    check_site(site, placements)  # so the site runs an image
    image = str(site.container.image)
    build = shlex.join(
        ["hpcscale", "container", "build", "--site", site.name, "--out", image, "--data", data]
    )
    record = image_record(image)
    if record is None or not record.get("data"):
        why = "its record names none" if record is not None else "no record of its build"
        raise UserError(
            f"{FLAG}: image {image} holds no data set ({why}: "
            f"{image}.json); build it with `{build}`"
        )
    held = record["data"]
    if "$" in data:  # the path is the job's shell's to expand: compare what can be compared
        return
    if held.get("source") != str(Path(data).absolute()):
        raise UserError(
            f"{FLAG}: image {image} holds {held.get('source')}, not --data {data}; "
            f"rebuild it with `{build}`, or give --data {held.get('source')}"
        )
    if Path(data).is_dir():
        now = describe(Path(data))
        if (now["files"], now["bytes"]) != (held.get("files"), held.get("bytes")):
            raise UserError(
                f"{FLAG}: {data} changed since image {image} was built ("
                f"{plural(now['files'], 'file')}, {now['bytes']} bytes now; the image holds "
                f"{plural(held.get('files') or 0, 'file')}, {held.get('bytes')} bytes); "
                f"rebuild it with `{build}`"
            )


def in_image() -> Path:
    """The data set's folder inside this rank's image (a rank of ``--data-placement image``)."""
    path = Path(IMAGE_DATA)
    if not path.is_dir():
        raise UserError(
            f"--data-placement image: no data set at {IMAGE_DATA} where this rank runs: its "
            "image was built without --data, or the rank runs outside the image"
        )
    return path
