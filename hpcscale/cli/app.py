"""The ``hpcscale`` application: its commands, its root options, and ``main``, the one error
boundary of every command (see ARCHITECTURE.md, "The command line").

A ``UserError`` anywhere below becomes one line on stderr and exit code 2; ``--verbose`` adds
the traceback. Each command group lives in a module of its own beside this one.
"""

from __future__ import annotations

import datetime
import errno
import os
import signal
import sys
import tempfile
import threading
import traceback
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from hpcscale import __version__
from hpcscale.cli import container, data, follow, predict, run, sites, study, workloads
from hpcscale.cli.command import split_command
from hpcscale.cli.session import Session, session
from hpcscale.errors import UserError
from hpcscale.fsutil import cache_root
from hpcscale.messages import cut, escaped, one_line

PLAIN: dict[str, Any] = {"rich_markup_mode": None}  # plain help: `--dry-run / --no-dry-run`
EXTRA_ARGS = {"allow_extra_args": True, "ignore_unknown_options": True}  # training options


def build() -> typer.Typer:
    """The command tree: every command group's functions under their names."""
    app = typer.Typer(
        name="hpcscale",
        help="How does my training scale on this machine? Site descriptors, job scripts, "
        "submission, timing and scaling reports.",
        no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False, **PLAIN,
    )  # fmt: skip
    app.callback()(root)
    sites_app = typer.Typer(
        help="List, show and validate site descriptors.", invoke_without_command=True, **PLAIN
    )
    sites_app.callback()(sites.sites_list)
    sites_app.command("show")(sites.sites_show)
    sites_app.command("validate")(sites.sites_validate)
    sites_app.command("schema")(sites.sites_schema)
    app.add_typer(sites_app, name="sites")
    data_app = typer.Typer(help="Simulated data sets of the workloads: generate them.", **PLAIN)
    data_app.command("generate")(data.data_generate)
    app.add_typer(data_app, name="data")
    app.command("workloads")(workloads.workloads_list)
    app.command(context_settings=EXTRA_ARGS)(study.render)
    app.command(context_settings=EXTRA_ARGS)(run.run)
    app.command(context_settings=EXTRA_ARGS)(study.submit)
    app.command(context_settings=EXTRA_ARGS)(study.optimize)
    for command in (follow.status, follow.cancel, follow.collect, follow.report):
        app.command()(command)
    app.command()(predict.predict)
    app.command()(predict.check)
    container_app = typer.Typer(
        help="Container recipes per site (hpccm) and image builds.", **PLAIN
    )
    container_app.command("render")(container.container_render)
    container_app.command("build")(container.container_build)
    app.add_typer(container_app, name="container")
    return app


def _version(value: bool) -> None:
    if value:
        print(f"hpcscale {__version__}")
        raise typer.Exit()


def root(
    ctx: typer.Context,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print version.")
    ] = False,
) -> None:
    session(ctx).verbose = verbose


app = build()

USER_ERRNOS = {
    errno.ENOSPC: "the file system is full; free space or choose another folder",
    errno.EDQUOT: "the disk quota is exceeded; free space or choose another folder",
    errno.EROFS: "the file system is read-only; choose a writable folder",
    errno.EACCES: "permission denied; choose a folder you can write to, or fix its permissions",
    errno.EPERM: "operation not permitted; check the path's owner and permissions",
    errno.ENOENT: "no such file or folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "is a folder, not a file",
    errno.EEXIST: "already exists",
    errno.ENAMETOOLONG: "the name is too long",
    errno.EMFILE: "too many open files; raise `ulimit -n`",
}


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point and the one error boundary of every command.

    A ``UserError``, a usage error, or an ``OSError`` a user can fix (full or read-only file
    system, permission, missing path) is one line and exit code 2; Ctrl-C (SIGINT) or SIGTERM
    one line ("interrupted", plus what the command noted in the session) and 130 or 143;
    anything else is a bug: one line naming the log file that holds the traceback, exit 1.
    ``--verbose`` prints the traceback as well.
    """
    state = Session()

    def interrupt(signum: int, _frame: object) -> None:
        """SIGINT and SIGTERM: noted, then a plain KeyboardInterrupt, the one type the standard
        library treats specially (``subprocess`` does not then wait on a child); ``finally``
        and ``with`` blocks on the way up run, so locks are released, and writes are atomic."""
        state.interrupted = signum
        raise KeyboardInterrupt

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, interrupt)
    unraisable = sys.unraisablehook
    sys.unraisablehook = _interrupt_again(unraisable, state)
    try:
        code = _invoke(argv, state)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        sys.unraisablehook = unraisable
    if state.interrupted:  # typer returns 130 for a KeyboardInterrupt; say what happened
        signum = signal.Signals(state.interrupted)
        notes = "".join(f"; {note}" for note in state.notes)
        _fail(state, f"interrupted ({signum.name}){notes}", 128 + signum, prefix="")
    sys.exit(code if isinstance(code, int) else 0)


def _invoke(argv: list[str] | None, state: Session) -> Any:
    """Run the command; every exception becomes its line and exit code here."""
    try:
        args, state.command = split_command(list(sys.argv[1:] if argv is None else argv))
        return app(args=args, prog_name="hpcscale", standalone_mode=False, obj=state)
    except UserError as exc:
        _fail(state, str(exc), exc.exit_code)
    except typer.Abort:  # Ctrl-C or end of input at a prompt
        state.interrupted = state.interrupted or signal.SIGINT
        return 130
    except typer.TyperException as exc:  # a usage error: unknown option, bad value
        _usage(state, exc)
    except KeyboardInterrupt:  # before the handler was in place
        state.interrupted = state.interrupted or signal.SIGINT
        return 130
    except OSError as exc:
        hint = USER_ERRNOS.get(exc.errno or 0)
        if hint is None:
            _internal(state, exc)
        where = (
            f"{exc.filename}: " if exc.filename is not None
            else f"writing {state.writing[-1]}: " if state.writing else ""
        )  # fmt: skip
        _fail(
            state, f"{where}{exc.strerror or exc} ({hint})" if exc.strerror else f"{where}{hint}", 2
        )
    except Exception as exc:  # the boundary: a bug becomes one line and a log
        _internal(state, exc)


def _usage(state: Session, exc: Any) -> NoReturn:
    if type(exc).__name__ == "NoArgsIsHelpError":  # `hpcscale` alone: its help
        print(exc.format_message())
        sys.exit(getattr(exc, "exit_code", 2))
    ctx = getattr(exc, "ctx", None)
    where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    _fail(state, f"{message}{where}", getattr(exc, "exit_code", 2))


def _interrupt_again(hook: Any, state: Session) -> Any:
    """An unraisable-exception hook for Ctrl-C landing inside a callback Python cannot raise
    from (a weakref callback of the import system, a ``__del__``): instead of "Exception
    ignored in: ... KeyboardInterrupt" and a lost Ctrl-C, the signal is delivered again, to be
    raised where the program can stop."""

    def again(args: Any) -> None:
        if isinstance(args.exc_value, KeyboardInterrupt) and state.interrupted:
            signal.raise_signal(state.interrupted)
            return
        hook(args)

    return again


def _fail(state: Session, message: str, code: int, prefix: str = "error: ") -> NoReturn:
    if state.verbose and sys.exc_info()[0] is not None:
        traceback.print_exc()
    print(prefix + one_line(message), file=sys.stderr)
    sys.exit(code)


def _internal(state: Session, exc: BaseException) -> NoReturn:
    """An unexpected exception: its traceback goes to a log file, the user gets one line."""
    text = "".join(traceback.format_exception(exc))
    name = f"hpcscale-{datetime.datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}.log"
    log = None
    for folder in (cache_root() / "logs", Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(f"hpcscale {__version__}\nargv: {sys.argv}\n\n{text}")
            log = folder / name
            break
        except OSError:
            continue
    if state.verbose:
        print(text, file=sys.stderr, end="")
    where = f"traceback in {log}" if log else "the traceback could not be saved"
    what = cut(escaped(f"{type(exc).__name__}: {exc}"), 200)
    print(f"internal error: {what}; {where}; please report it with that file", file=sys.stderr)
    sys.exit(1)
