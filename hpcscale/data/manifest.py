"""A data set's ``manifest.json``: one family, ``DataManifest``, for every kind of data set.

A data set's kind says what its samples are and which workloads train on it:

- ``"lartpc"``: single-particle LArTPC events (``data/files.py``); the manifest's ``format`` is
  ``"hpcscale-lartpc-sparse"`` (data sets written before the ``kind`` field have no ``kind``:
  the format alone says it) → ``LArTPCManifest`` (resolution, classes);
- a sparse tensor kind, ``"calo3d"`` (3DGAN showers) or ``"jets"`` (CMS jet images)
  (``data/tensors.py``); ``format`` ``"hpcscale-sparse-tensor"`` and its ``kind`` field →
  ``TensorManifest`` (shape, per-sample scalars, meta).

``read_manifest(folder, kind)`` reads and validates either, every problem one line naming the
file, field and value; ``is_data_manifest(path)`` tells a data set's ``manifest.json`` from a
study's (which has no ``format`` field) by its JSON fields, not by searching its text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError

from hpcscale import workloads
from hpcscale.errors import DataError
from hpcscale.messages import describe, shown

LARTPC_FORMAT = "hpcscale-lartpc-sparse"
TENSOR_FORMAT = "hpcscale-sparse-tensor"
VERSION = 1
LARTPC = "lartpc"  # the kind of LArTPC event sets


@dataclass(frozen=True, kw_only=True)
class DataManifest:
    """What every data set's manifest says: its folder, kind and shard files."""

    folder: Path
    kind: str  # "lartpc", "calo3d", "jets", …
    files: list[dict[str, Any]]  # {"name", "split", "events", …}
    generator: dict[str, Any] = field(default_factory=dict)  # how it was made: seconds, rates

    def split(self, name: str) -> list[dict[str, Any]]:
        return [f for f in self.files if f["split"] == name]

    def count(self, split: str) -> int:
        return sum(f["events"] for f in self.split(split))

    def check_files(self) -> None:
        """Every shard the manifest lists is in the folder (``DataError`` naming the first)."""
        missing = [f["name"] for f in self.files if not (self.folder / f["name"]).is_file()]
        if missing:
            raise DataError(
                f"{self.folder / missing[0]}: no such file (listed in manifest.json; "
                f"{len(missing)} of {len(self.files)} shards missing)"
            )


@dataclass(frozen=True, kw_only=True)
class LArTPCManifest(DataManifest):
    resolution: int
    classes: list[str]


@dataclass(frozen=True, kw_only=True)
class TensorManifest(DataManifest):
    shape: tuple[int, ...]
    scalars: dict[str, str]  # name → numpy dtype
    meta: dict[str, Any] = field(default_factory=dict)


class ShardEntry(BaseModel):
    """One file of the manifest's ``files`` list (other keys, such as ``bytes``, are kept)."""

    model_config = ConfigDict(extra="allow")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=200)  # in the folder
    split: Literal["train", "val"]
    events: int = Field(ge=0)


class DataSchema(BaseModel):
    """What every data set's ``manifest.json`` must hold; checked before any rank starts."""

    model_config = ConfigDict(extra="allow")
    files: list[ShardEntry] = Field(min_length=1)
    generator: dict[str, Any] = Field(default_factory=dict)


class LArTPCSchema(DataSchema):
    resolution: int = Field(ge=16, le=100_000)
    classes: list[str] = Field(min_length=2, max_length=1000)


class TensorSchema(DataSchema):
    kind: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=40)
    shape: list[PositiveInt] = Field(min_length=1, max_length=8)
    scalars: dict[str, str] = Field(default_factory=dict)
    meta: dict[str, Any] = Field(default_factory=dict)


def workload_of(kind: str) -> str:
    """The workload whose data sets are of ``kind`` (what ``data generate --workload`` takes:
    cms-jets for "jets"); ``kind`` itself when no registered workload trains on it."""
    return next((w.name for w in workloads.SPECS if w.data == kind), kind)


def kind_of(raw: object) -> str | None:
    """The kind of data set a parsed ``manifest.json`` describes, from its ``format`` (and
    ``kind``) fields; None when it is no data set's (a study's manifest, anything else)."""
    if not isinstance(raw, dict):
        return None
    if raw.get("format") == LARTPC_FORMAT:
        return LARTPC
    if raw.get("format") == TENSOR_FORMAT and isinstance(raw.get("kind"), str):
        return raw["kind"]
    return None


def is_data_manifest(path: Path) -> bool:
    """Whether ``path`` (a ``manifest.json``) is a data set's (from ``hpcscale data generate``),
    not a study's; False for a file that is missing or not JSON."""
    try:
        return kind_of(json.loads(Path(path).read_bytes())) is not None
    except (OSError, ValueError):
        return False


def read_manifest(folder: Path, kind: str | None = None) -> DataManifest:
    """The data set's manifest, validated: a ``LArTPCManifest`` or a ``TensorManifest``.
    ``kind``: the kind the caller trains on (refused, naming both, when the set is another)."""
    path = Path(folder) / "manifest.json"
    try:
        raw = json.loads(path.read_bytes())
    except FileNotFoundError:
        hint = f" --workload {workload_of(kind)}" if kind and kind != LARTPC else ""
        raise DataError(
            f"{path}: no such file; create a data set with `hpcscale data generate{hint} "
            f"--out {folder}`"
        ) from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(raw, dict):
        raise DataError(f"{path}: a manifest is a JSON object, not {type(raw).__name__}")
    found = kind_of(raw)
    if found is None or raw.get("version") != VERSION:
        expected = LARTPC_FORMAT if kind == LARTPC else TENSOR_FORMAT if kind else "a data set's"
        raise DataError(
            f"{path}: format {shown(raw.get('format'))} version {shown(raw.get('version'))}; "
            f"expected {expected!r} version {VERSION}"
            + (f" (a {kind} data set)" if kind and kind != LARTPC else "")
        )
    if kind is not None and found != kind:
        raise DataError(
            f"{folder} holds {workload_of(found)} data ({found}); this model trains on "
            f"{workload_of(kind)} data ({kind}): give --data a data set of that kind, or make one "
            f"with `hpcscale data generate --workload {workload_of(kind)} --out DIR`"
        )
    schema = LArTPCSchema if found == LARTPC else TensorSchema
    try:
        model = schema.model_validate(raw)
    except ValidationError as exc:
        raise DataError(f"{path}: {describe(exc, schema)}") from None
    names = [f.name for f in model.files]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise DataError(f"{path}: files: {twice[0]!r} is listed twice")
    common = {
        "folder": Path(folder), "kind": found, "files": [f.model_dump() for f in model.files],
        "generator": dict(model.generator),
    }  # fmt: skip
    if isinstance(model, LArTPCSchema):
        return LArTPCManifest(**common, resolution=model.resolution, classes=model.classes)
    assert isinstance(model, TensorSchema)
    return TensorManifest(
        **common, shape=tuple(model.shape), scalars=dict(model.scalars), meta=dict(model.meta)
    )
