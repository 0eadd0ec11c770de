"""What one ``hpcscale`` invocation remembers between its command and its error boundary
(``app.main``): no module-level state, one ``Session`` per call, carried by typer's context."""

from __future__ import annotations

from dataclasses import dataclass, field

import typer

from hpcscale.preflight import check_writable


@dataclass
class Session:
    verbose: bool = False
    writing: list[str] = field(default_factory=list)  # output folders, for a full disk's message
    notes: list[str] = field(default_factory=list)  # said after "interrupted" on Ctrl-C
    interrupted: int | None = None  # the signal that stopped the command
    # a training command given after `--` (run, submit, render), kept out of click's parsing
    command: list[str] | None = None


def session(ctx: typer.Context) -> Session:
    """The invocation's session (a fresh one when the app runs without ``main``, in tests)."""
    return ctx.ensure_object(Session)


def writable(ctx: typer.Context, folder: object, what: str) -> None:
    """Refuse an unwritable output folder now; remember it, so that a full disk later on can be
    told as "writing --out X: No space left on device" even when the OS names no file."""
    check_writable(folder, what)  # type: ignore[arg-type]
    session(ctx).writing.append(f"{what} {folder}")
