"""A training command after ``--`` (``hpcscale run --ranks 2 -- python train.py --lr 0.1``).

click would put the words after ``--`` into ``ctx.args`` together with the training options
given before it (and ``submit`` would take the first word for its SPEC file), so the command is
split off the raw argv before click parses it: everything after the first ``--`` of a command
that takes one (``run``, ``submit``, ``render``) is the command, kept in the session.
"""

from __future__ import annotations

TAKES_COMMAND = ("run", "submit", "render")


def split_command(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """(the arguments for click, the command after ``--`` or None)."""
    if "--" not in argv:
        return argv, None
    at = argv.index("--")
    words = [a for a in argv[:at] if not a.startswith("-")]
    if not words or words[0] not in TAKES_COMMAND:
        return argv, None
    return argv[:at], argv[at + 1 :]
