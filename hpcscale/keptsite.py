"""A study folder keeps the site descriptor its jobs were made from (``STUDY/site/NAME.yaml``),
so that ``submit --like STUDY``, ``optimize --study STUDY`` and ``container build --study
STUDY`` find the site without ``--sites-dir``: the folder is the one record of its study."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hpcscale.errors import UserError
from hpcscale.fsutil import atomic_write
from hpcscale.sites import site_files

KEPT = "site"  # the folder, inside a study folder, that holds its descriptor


def kept_dir(folder: Path) -> Path:
    """Where the study in ``folder`` keeps its descriptor (a sites folder of one site)."""
    return Path(folder) / KEPT


def with_kept(sites_dir: Sequence[Path] | None, *places: Path | None) -> list[Path]:
    """``--sites-dir`` followed by the kept descriptors of ``places`` (study folders, or spec
    files inside one) that have one: a folder given by the user is searched first."""
    dirs = list(sites_dir or [])
    for place in places:
        if place is None:
            continue
        folder = Path(place) if Path(place).is_dir() else Path(place).parent
        is_study = (folder / "study.yaml").exists() or (folder / "manifest.json").exists()
        if is_study and kept_dir(folder).is_dir() and kept_dir(folder) not in dirs:
            dirs.append(kept_dir(folder))
    return dirs


def study_site_name(folder: Path) -> str:
    """The site of the study in ``folder`` (the name its kept descriptor has)."""
    kept = sorted(kept_dir(folder).glob("*.yaml"))
    if len(kept) == 1:
        return kept[0].stem
    raise UserError(
        f"--study {folder}: keeps no site descriptor (made before studies kept theirs, or not a "
        "study); give --site NAME (and --sites-dir DIR for a descriptor of your own)"
    )


def keep_descriptor(folder: Path, name: str, sites_dir: Sequence[Path] | None) -> None:
    """Copy site ``name``'s descriptor (as found with ``sites_dir``) into the study folder,
    once: a study's descriptor never changes under it."""
    kept = kept_dir(folder) / f"{name}.yaml"
    if kept.exists():
        return
    source = site_files(list(sites_dir or [])).get(name)
    if source is not None:
        atomic_write(kept, source.read_text())
