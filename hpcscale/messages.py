"""How a problem is told to a user: one line, values escaped and cut, pydantic errors named.

Every error line hpcscale prints goes through ``one_line`` (in ``cli.main``), so no value — a
10 KB string, a key with a newline — can split it or flood the terminal; ``shown`` is for a value
quoted inside a message, ``describe`` turns a pydantic ``ValidationError`` into
``field.path: what is wrong (got VALUE)`` parts.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ValidationError

VALUE_LIMIT = 60  # characters of a quoted value
LINE_LIMIT = 600  # characters of a whole error line


def escaped(text: str) -> str:
    """``text`` with every non-printable character (newline, tab, escape codes) written as its
    Python escape, so it stays on one line and cannot drive the terminal."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def cut(text: str, limit: int) -> str:
    """``text`` cut to about ``limit`` characters, saying how long it was."""
    if len(text) <= limit:
        return text
    return f"{text[: max(limit - 20, 8)]}… ({len(text)} characters)"


def shown(value: object, limit: int = VALUE_LIMIT) -> str:
    """A value quoted in a message: ``repr`` for strings (quotes show where it starts and
    ends), escaped, cut."""
    text = repr(value) if isinstance(value, str) else escaped(str(value))
    return cut(text, limit)


def one_line(message: str, limit: int = LINE_LIMIT) -> str:
    """An error message as one terminal line: escaped and cut in the middle (its start names
    the file or option, its end what to do)."""
    text = escaped(message)
    if len(text) <= limit:
        return text
    half = limit // 2 - 10
    return f"{text[:half]} … {text[-half:]}"


def did_you_mean(value: str, allowed: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the allowed name closest to ``value``, else empty."""
    close = difflib.get_close_matches(value, list(allowed), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def describe(exc: ValidationError, model: type[BaseModel]) -> str:
    """One line for all of a ValidationError's errors: field path, message, offending value."""
    parts = [_describe_one(err, model) for err in exc.errors()]
    return "; ".join(parts)


def _describe_one(err: Any, model: type[BaseModel]) -> str:
    loc = ".".join(shown(p, 40) if isinstance(p, str) and not p.isidentifier() else str(p)
                   for p in err["loc"])  # fmt: skip
    if not loc:  # a whole-model check: its message names the fields itself
        return err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        allowed = ", ".join(_fields_at(model, err["loc"][:-1]))
        return f"{loc}: unknown field; allowed fields here: {allowed}"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "string_pattern_mismatch":
        msg = f"value {shown(err['input'])} has characters not allowed here ({msg})"
    elif err["type"] not in ("missing",) and "input" in err and not isinstance(err["input"], dict):
        msg = f"{msg} (got {shown(err['input'])})"
    value = err.get("input")
    if err["type"] == "string_type" and isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 reads an unquoted 12:00:00 as 43200 (base 60): the text was a time
        hms = f"{value // 3600:02d}:{value // 60 % 60:02d}:{value % 60:02d}"
        wanted = f"'{hms}'" if "walltime" in loc or "time" in loc else "the value"
        msg += f"; quote it ({loc.split('.')[-1]}: {wanted}): YAML reads 12:00:00 as a number"
    return f"{loc}: {msg}"


def _fields_at(model: type[BaseModel], loc: Iterable[Any]) -> list[str]:
    """The field names of the (nested) model at ``loc``, for 'allowed fields' hints."""
    current: Any = model
    keyed = False  # the last field was a mapping: this part is one of its keys (space.lr)
    for part in loc:
        if isinstance(part, int) or current is None or keyed:
            keyed = False
            continue
        field = current.model_fields.get(str(part))
        if field is None:
            return []
        keyed = typing.get_origin(field.annotation) is dict
        current = _model_of(field.annotation)
    return sorted(current.model_fields) if current else []


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found:
            return found
    return None
