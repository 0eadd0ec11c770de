"""Where the bundled data folders (sites/, templates/, containers/) live.

In an installed wheel they are package data under ``hpcscale/_data``; in a source checkout (and an
editable install) they are the top-level folders of the repository.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """Return the folder ``name`` (``sites``, ``templates`` or ``containers``)."""
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"hpcscale's bundled folder {name!r} is missing from the installation")
