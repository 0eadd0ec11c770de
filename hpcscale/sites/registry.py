"""Find, load and validate site descriptors.

Search order (first match wins): ``--sites-dir`` folders, then ``HPCSCALE_SITES_PATH``
(``os.pathsep``-separated), then the bundled ``sites/``. A site's name is its file's stem.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from hpcscale.errors import DescriptorError, UnknownSiteError, UserError
from hpcscale.messages import describe
from hpcscale.resources import resource_dir
from hpcscale.sites.models import Site
from hpcscale.sites.refusals import refuse
from hpcscale.sites.yamlload import load_yaml
from hpcscale.workloads import check_training

ENV_PATH = "HPCSCALE_SITES_PATH"


def search_path(extra: Sequence[Path] = ()) -> list[Path]:
    dirs = [Path(p) for p in extra]
    dirs += [Path(p) for p in os.environ.get(ENV_PATH, "").split(os.pathsep) if p]
    dirs.append(resource_dir("sites"))
    return dirs


def site_files(extra: Sequence[Path] = ()) -> dict[str, Path]:
    """Map every site name on the search path to its descriptor file."""
    found: dict[str, Path] = {}
    for folder in search_path(extra):
        if not folder.is_dir():
            raise DescriptorError(f"{folder}: sites folder does not exist")
        for path in sorted(folder.glob("*.y*ml")):
            found.setdefault(path.stem, path)
    return found


def load_site(name: str, extra: Sequence[Path] = ()) -> Site:
    files = site_files(extra)
    if name not in files:
        known = ", ".join(sorted(files))
        raise UnknownSiteError(
            f"unknown site {name!r}; known sites: {known}; for a descriptor of your own, give "
            f"--sites-dir DIR (or set {ENV_PATH}) with DIR/{name}.yaml in it"
        )
    return load_file(files[name])


def load_file(path: Path) -> Site:
    """Parse and validate one descriptor, then ask its scheduler, launcher and runtime what they
    cannot honour (``refusals``); errors name the file, field, value and what is allowed."""
    raw = load_yaml(path)
    if not isinstance(raw, dict):
        raise DescriptorError(f"{path}: a site descriptor is a YAML mapping")
    raw.setdefault("name", path.stem)
    if raw["name"] != path.stem:
        raise DescriptorError(
            f"{path}: name: {raw['name']!r} must match the file name {path.stem!r}"
        )
    if "workload" in raw:  # the block's name before issue 26 (it named the training component)
        raise DescriptorError(f"{path}: workload: was renamed to training: (same fields)")
    try:
        site = Site.model_validate(raw)
    except ValidationError as exc:
        raise DescriptorError(f"{path}: {describe(exc, Site)}") from None
    # the names the descriptor's fields select, checked against their registries
    try:
        check_training(site)
    except UserError as exc:
        raise DescriptorError(f"{path}: {exc}") from None
    return refuse(site, str(path), DescriptorError)


# The command-line options of the scheduler's request fields (`render`, `submit`).
FLAGS = {"memory_gb": "--mem"}


def with_requests(site: Site, **given: object) -> Site:
    """``site`` with the request fields given on the command line (None: not given) in place of
    its own, validated again: a value its scheduler cannot express is refused here too, as one
    line naming the option. ``nodelist`` and ``exclude`` come comma-separated."""
    updates = {}
    for key, value in given.items():
        if value is None:
            continue
        if key in ("nodelist", "exclude"):
            value = [host for host in str(value).split(",") if host]
        updates[key] = value
    if not updates:
        return site
    data = site.model_dump()
    data["scheduler"].update(updates)
    flags = ", ".join(FLAGS.get(k, f"--{k.replace('_', '-')}") for k in updates)
    try:
        site = Site.model_validate(data)
    except ValidationError as exc:
        raise UserError(f"{flags}: {describe(exc, Site)}") from None
    return refuse(site, flags)
