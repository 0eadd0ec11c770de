"""The site descriptor's field reference, generated from its pydantic models (``sites/models.py``
stays the one definition): JSON Schema (``hpcscale sites schema``) and the Markdown page
``docs/site-descriptor.md`` (``hpcscale sites schema --markdown``; a test keeps it current and
fails on a field without a description)."""

from __future__ import annotations

import json
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from hpcscale.sites.models import Site

PAGE = "docs/site-descriptor.md"  # where the Markdown reference lives in the repository


def schema() -> str:
    """The descriptor's JSON Schema (draft 2020-12, as pydantic writes it), indented."""
    return json.dumps(Site.model_json_schema(), indent=2) + "\n"


def models(root: type[BaseModel] = Site) -> list[tuple[str, type[BaseModel]]]:
    """Every model of the descriptor, as (YAML path, model), the root first."""
    out: list[tuple[str, type[BaseModel]]] = []
    seen: set[type[BaseModel]] = set()

    def walk(path: str, model: type[BaseModel]) -> None:
        if model in seen:
            return
        seen.add(model)
        out.append((path, model))
        for name, field in model.model_fields.items():
            for sub in _models_in(field.annotation):
                walk(f"{path}.{name}" if path else name, sub)

    walk("", root)
    return out


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def undocumented() -> list[str]:
    """``Model.field`` of every field that has no description."""
    return [f"{model.__name__}.{name}" for _, model in models()
            for name, field in model.model_fields.items() if not field.description]  # fmt: skip


def _type(prop: dict[str, Any]) -> str:
    """A field's type in words, from its JSON Schema."""
    if "$ref" in prop:
        return prop["$ref"].rsplit("/", 1)[-1]
    if "enum" in prop:
        return " \\| ".join(f"`{v}`" for v in prop["enum"])
    if "const" in prop:
        return f"`{prop['const']}`"
    if "anyOf" in prop:
        parts = [_type(p) for p in prop["anyOf"] if p.get("type") != "null"]
        null = any(p.get("type") == "null" for p in prop["anyOf"])
        return " or ".join(parts) + (" (or null)" if null else "")
    kind = prop.get("type", "any")
    if kind == "array":
        return f"list of {_type(prop.get('items', {}))}"
    if kind == "object":
        return f"map to {_type(prop.get('additionalProperties') or {})}"
    words = {"string": "text", "integer": "integer", "number": "number", "boolean": "bool"}
    text = words.get(kind, kind)
    bounds = [f"{op} {prop[k]}" for k, op in (("minimum", "≥"), ("exclusiveMinimum", ">"),
              ("maximum", "≤"), ("exclusiveMaximum", "<")) if k in prop]  # fmt: skip
    return text + (f" ({', '.join(bounds)})" if bounds else "")


def _default(field: Any) -> str:
    if field.is_required():
        return "required"
    value = field.default_factory() if field.default_factory is not None else field.default
    if value is PydanticUndefined:
        return "required"
    if isinstance(value, BaseModel):
        return "see below"
    return f"`{json.dumps(value)}`"


def markdown() -> str:
    """The field reference as a Markdown page: one table per block of the descriptor."""
    lines = [
        "# Site descriptor fields",
        "",
        "Generated from `hpcscale/sites/models.py` by `hpcscale sites schema --markdown`; do not "
        "edit by hand (a test compares this page with the models). `hpcscale sites schema` "
        "prints the same as JSON Schema, e.g. for an editor's YAML completion.",
        "",
    ]
    for path, model in models():
        doc = " ".join((model.__doc__ or "").split("\n\n")[0].split())
        lines += [f"## `{path or '(top level)'}`", ""]
        if doc:
            lines += [doc, ""]
        lines += ["| field | type | default | description |", "|---|---|---|---|"]
        props = model.model_json_schema()["properties"]
        for name, field in model.model_fields.items():
            desc = (field.description or "").replace("|", "\\|")
            lines.append(f"| `{name}` | {_type(props[name])} | {_default(field)} | {desc} |")
        lines.append("")
    return "\n".join(lines)
