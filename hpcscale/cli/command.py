"""A training command after ``--`` (``hpcscale run --ranks 2 -- python train.py --lr 0.1``).

click would put the words after ``--`` into ``ctx.args`` together with the training options
given before it (and ``submit`` would take the first word for its SPEC file), so the command is
split off the raw argv before click parses it: everything after the first ``--`` of a command
that takes one (``run``, ``submit``, ``render``) is the command, kept in the session.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hpcscale.fmt import duration_text, plural

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


def print_command_summary(summary: dict[str, Any], folder: Path) -> None:
    """A command job's summary in a few lines: how it ended, where and for how long, what it
    used, and the training figures its output gave (MLPerf logging, ``hpcscale.track``)."""
    status = summary.get("status")
    line = f"{folder}: {status}"
    failure = summary.get("failure")
    if failure:
        where = f" on {failure['host']}" if failure.get("host") else ""
        line += f" (rank {failure['rank']}{where}: {failure['reason']})"
    print(line)
    hosts = sorted({h for h in (summary.get("hosts") or {}).values() if h})
    exits = summary.get("exit_status") or {}
    print(
        f"  {plural(summary.get('world_size') or 0, 'rank')} on {', '.join(hosts) or '?'}; "
        f"wall time {duration_text(summary.get('wall_time_s'))}; exit "
        f"{', '.join(f'{r}: {v}' for r, v in exits.items()) or '?'}; peak RSS "
        f"{_gib(summary.get('peak_rss_gib'))}"
        + (
            f", GPU {_gib(summary['peak_device_memory_gib'])}"
            if summary.get("peak_device_memory_gib")
            else ""
        )
    )
    figures = [
        ("DLT", duration_text(summary["dlt_s"]) if summary.get("dlt_s") is not None else None),
        ("TTL", duration_text(summary["ttl_s"]) if summary.get("ttl_s") is not None else None),
        ("epochs", summary.get("epochs")),
        ("epochs/min", _num(summary.get("epoch_rate_per_min"))),
        ("samples/s", _num(summary.get("samples_per_s"))),
    ]
    shown = [f"{name} {value}" for name, value in figures if value is not None]
    if shown:
        print("  " + "; ".join(shown))
    for note in ("ttl_note", "mllog_note"):
        if summary.get(note):
            print(f"  note: {summary[note]}")
    print(f"  the command's output: {folder}/rank-<r>.out and .err")
    if failure:
        _print_last_lines(folder / f"rank-{failure['rank']}.err")


def _print_last_lines(path: Path, count: int = 5) -> None:
    """The failed rank's last lines of stderr: why it failed, without opening a file."""
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return
    if lines:
        print(f"  the last lines of {path}:")
        for line in lines[-count:]:
            print(f"    {line[:200]}")


def _gib(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} GiB"


def _num(value: float | None) -> str | None:
    return None if value is None else f"{value:.3g}"
