"""Options shared by several commands, and the parsing of what they take.

The scheduler requests (``--mem``, ``--qos``, ...) are not written out here: ``study_options``
generates them from the study spec's ``Requests`` model, which takes them from the descriptor's
scheduler block — one definition for the descriptor, the spec and the command line.
"""

from __future__ import annotations

import datetime
import functools
import inspect
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from hpcscale.errors import UserError
from hpcscale.messages import shown
from hpcscale.spec import REQUEST_FIELDS, REQUEST_FLAGS, SIZE_KEYS, Requests, read_base

SitesDir = Annotated[
    list[Path] | None,
    typer.Option(
        "--sites-dir",
        metavar="DIR",
        help="Extra folder of site descriptors, searched before the bundled ones (repeatable; "
        "also HPCSCALE_SITES_PATH).",
    ),
]
Site = Annotated[str | None, typer.Option("--site", "-s", help="Site name.")]
Walltime = Annotated[str | None, typer.Option(help="HH:MM[:SS] per job.")]
Data = Annotated[Path | None, typer.Option(help="Data set folder; default: generated.")]
Model = Annotated[
    str | None,
    typer.Option(help="What to train, e.g. 3dgan-small (default: the site's training.model)."),
]
TargetLoss = Annotated[float | None, typer.Option(help="TTL target loss.")]
Like = Annotated[
    Path | None,
    typer.Option(metavar="STUDY", help="Repeat that study (its study.yaml); flags change it."),
]
StudyDir = Annotated[Path | None, typer.Option("--study", help="Study folder.")]
Sweep = Annotated[
    list[str] | None,
    typer.Option(
        metavar="OPTION=V1,V2",
        help="Run every value of a training option, e.g. batch=64,512,1024 (repeat: a grid).",
    ),
]
Kfold = Annotated[
    int | None,
    typer.Option(help="K-fold cross-validation: K folds of the events, one job each.", min=2),
]
Repeats = Annotated[
    int | None,
    typer.Option(
        min=1, max=100,
        help="Run every size (and sweep point) R times; tables, fits and checks use the means "
        "and say how noisy each figure was.",
    ),
]  # fmt: skip
Sizes = {
    key: Annotated[str | None, typer.Option(help=text)]
    for key, text in (
        ("gpus", "GPU counts, e.g. 1,2,4,8."),
        ("nodes", "Node counts."),
        ("ranks", "Rank counts (CPU sites, local)."),
    )
}
Gpus, Nodes, Ranks = Sizes["gpus"], Sizes["nodes"], Sizes["ranks"]

# Options of the study's requests that are not scheduler fields (see ``Requests``).
_OWN = {
    "container": (
        bool | None,
        typer.Option(
            "--container/--no-container",
            help="Wrap every rank in the site's container (default: the descriptor's).",
        ),
    ),
    "image": (
        str | None,
        typer.Option(
            "--image",
            help="Run the ranks in this image (implies --container; default: the descriptor's "
            "container.image), e.g. one `hpcscale container build --out` made.",
        ),
    ),
    "engine": (
        str | None,
        typer.Option(
            "--engine",
            help="Train with this engine (default: the descriptor's engine): torch, horovod, or "
            "master-worker (rank 0 a master, the others workers; training options "
            "--update-rule, --max-staleness, --group-size).",
        ),
    ),
    "requeues": (
        int | None,
        typer.Option(
            help="Times a job that reaches its walltime is requeued from its checkpoint "
            "(default: the descriptor's limits.requeues, 3).",
            min=0,
            max=100,
        ),
    ),
}


def _request_option(name: str) -> tuple[Any, Any]:
    """The command-line option of a scheduler request, from its field in ``Requests``."""
    info = Requests.model_fields[name]
    kind = next(a for a in typing.get_args(info.annotation) if a is not type(None))
    if typing.get_origin(kind) is Annotated:  # a constrained type: the option takes its base
        kind = typing.get_args(kind)[0]
    help_text = (info.description or "").rstrip(".")
    help_text = help_text[:1].upper() + help_text[1:]
    if name in ("nodelist", "exclude"):
        help_text += ", comma-separated"
    flag = REQUEST_FLAGS.get(name, "--" + name.replace("_", "-"))
    metavar = "GB" if name == "memory_gb" else None
    return kind | None, typer.Option(flag, help=help_text + ".", metavar=metavar)


def study_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the study's request options (``Requests``: container, image, requeues and the
    scheduler requests) to ``command``, which receives them as one mapping, ``requests``."""
    names = [*_OWN, *REQUEST_FIELDS]
    hints = typing.get_type_hints(command, include_extras=True)
    sig = inspect.signature(command)
    params = [
        p.replace(annotation=hints[p.name]) for p in sig.parameters.values() if p.name != "requests"
    ]
    for name in names:
        kind, option = _OWN[name] if name in _OWN else _request_option(name)
        params.append(
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=None,
                annotation=Annotated[kind, option],
            )
        )

    @functools.wraps(command)
    def with_requests(**kwargs: Any) -> Any:
        requests = {name: kwargs.pop(name) for name in names}
        return command(**kwargs, requests=requests)

    with_requests.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    with_requests.__annotations__ = {p.name: p.annotation for p in params}
    del with_requests.__wrapped__  # typer reads the signature above, not the command's
    return with_requests


def sizes(text: str | None, flag: str) -> list[int]:
    """A size list as typed: comma-separated positive integers, each once. (Sizes a site cannot
    hold are refused by the plan, which knows its nodes.)"""
    if text is None:
        return []
    what = shown(text)
    parts = [part.strip() for part in text.split(",")]
    if "" in parts:
        raise UserError(f"{flag} {what}: an empty entry; give sizes like 1,2,4,8")
    try:
        values = [int(part) for part in parts]
    except ValueError:
        raise UserError(f"{flag} {what}: expected comma-separated integers, e.g. 1,2,4,8") from None
    if min(values) < 1:
        raise UserError(f"{flag} {what}: sizes must be positive integers")
    twice = sorted({n for n in values if values.count(n) > 1})
    if twice:
        raise UserError(f"{flag} {what}: size {twice[0]} given twice; each size is one job")
    return values


def size_flags(**given: str | None) -> dict[str, list[int]]:
    """The one size list given (``gpus``, ``nodes`` or ``ranks``), parsed; {} if none."""
    parsed = {k: sizes(v, f"--{k}") for k, v in given.items() if k in SIZE_KEYS and v}
    if len(parsed) > 1:
        raise UserError("give exactly one of --gpus, --nodes or --ranks (comma-separated sizes)")
    return parsed


def spec_arg(args: list[str], like: Path | None) -> tuple[dict[str, Any] | None, str, list[str]]:
    """The study spec a command starts from: a file given as its first argument, or a study
    folder's (``--like``); (mapping, its name, the training options that follow)."""
    path = Path(args[0]) if args and not args[0].startswith("-") else None
    if path is not None and like is not None:
        raise UserError(f"give a spec file ({path}) or --like STUDY, not both")
    if path is None and like is None:
        return None, "the command line", args
    raw, where = read_base(path or like)  # type: ignore[arg-type]
    return raw, where, args[1:] if path is not None else args


def study_folder(study_dir: Path | None, site: str) -> Path:
    """``--study``, else a new folder named after the site and the time."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return study_dir or Path("studies") / f"{site}-{stamp}"


__all__ = [
    "Data", "Gpus", "Kfold", "Like", "Model", "Nodes", "Ranks", "Repeats", "Site", "SitesDir",
    "StudyDir", "Sweep", "TargetLoss", "Walltime", "size_flags", "sizes", "spec_arg",
    "study_folder", "study_options",
]  # fmt: skip
