"""A study is a file: the typed study spec (YAML) that ``hpcscale submit SPEC`` runs.

What a study varies is data (ARCHITECTURE.md, "Contracts"): the sizes, a sweep over options, K
folds of the events, or a search space to optimise. The command-line flags of ``submit`` and
``optimize`` write the same spec, and the study folder keeps it as ``STUDY/study.yaml`` beside
its manifest, so ``hpcscale submit --like STUDY --site OTHER`` repeats a study elsewhere::

    site: local
    ranks: [1]                      # or gpus: / nodes:, one job per size
    model: jishnet-small
    options: [--epochs, "2"]        # more options of the training core, as typed
    sweep: {batch: [4, 8, 16]}      # a grid: every combination is one job per size
    kfold: 3                        # K folds of the events: K jobs per point
    repeats: 3                      # every job R times (label suffix -rep1 … -rep3)
    optimize:                       # a search (hpcscale optimize); see SearchSpace
      method: gp
      space: {lr: {low: 1.0e-4, high: 1.0e-1, log: true}}
      trials: 6
      parallel: 2
"""

from __future__ import annotations

import itertools
import math
import re
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator

from hpcscale.errors import UserError
from hpcscale.messages import describe, shown
from hpcscale.sites.models import EngineKind, Scheduler
from hpcscale.sites.yamlload import load_yaml

SPEC_NAME = "study.yaml"  # the spec's name in a study folder
# A training option's name (``lr`` → ``--lr``) and a swept value: plain tokens only, so that
# nothing a spec says can reach a job script as anything but one argument.
OPTION = r"^[a-z][a-z0-9_-]{0,39}$"
VALUE = re.compile(r"^[A-Za-z0-9._+-]{1,40}$")
SIZE_KEYS = ("gpus", "nodes", "ranks")
# Options a study sets itself: sweeping or searching them would fight the study.
RESERVED = {"data", "out", "study", "job", "time_limit", "max_requeues", "site", "engine"}

Value = bool | int | float | str  # bool first: YAML's true stays True, not 1
Option = Annotated[str, Field(pattern=OPTION)]


def flag(name: str) -> str:
    """The training core's flag for an option name: ``target_loss`` → ``--target-loss``."""
    return "--" + name.replace("_", "-")


def value_text(value: Value) -> str:
    """A value as the training core's command line gets it (``1e-3`` stays short; a switch's
    true or false)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


# The scheduler requests a study may set (``submit``'s options of the same names): fields of the
# descriptor's scheduler block, which stays their one definition (type, bounds, description).
REQUEST_FIELDS = (
    "cpus_per_task", "threads_per_core", "memory_gb", "reservation", "nodelist", "exclude",
    "constraint", "qos",
)  # fmt: skip
# How the command line spells a request field where it is not ``--field-name``.
REQUEST_FLAGS = {"memory_gb": "--mem"}


def _request_field(name: str) -> tuple[Any, Any]:
    """A study request's field: the scheduler field's base type, optional, and description
    (host lists as typed, ``a,b``). Its constraints are checked where the request meets the
    descriptor (``sites.registry.with_requests``), so an error names the option and the field."""
    info = Scheduler.model_fields[name]
    kind = next(a for a in typing.get_args(info.annotation) if a is not type(None))
    if typing.get_origin(kind) is Annotated:
        kind = typing.get_args(kind)[0]
    if name in ("nodelist", "exclude"):
        kind = str
    return kind | None, Field(None, description=info.description)


class _RequestsBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    container: bool | None = None
    image: str | None = None  # --image: run the ranks in this image (implies the container)
    requeues: int | None = Field(None, ge=0, le=100)
    engine: EngineKind | None = None  # --engine: the site's engine, for this study

    def scheduler(self) -> dict[str, Any]:
        """The fields that go into the site's scheduler block (``with_requests``)."""
        return self.model_dump(exclude={"container", "image", "requeues", "engine"})


Requests = create_model(
    "Requests",
    __base__=_RequestsBase,
    __doc__="Per-study scheduler requests (``submit``'s options of the same names).",
    **{name: _request_field(name) for name in REQUEST_FIELDS},  # type: ignore[call-overload]
)


class Param(BaseModel):
    """One dimension of a search space: a range (``low``, ``high``; ``log``: searched on a log
    scale; ``type: int`` for whole numbers) or ``choices``."""

    model_config = ConfigDict(extra="forbid")

    low: float | None = None
    high: float | None = None
    log: bool = False
    type: Literal["float", "int"] = "float"
    choices: list[Value] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _check(self) -> Param:
        if self.choices is not None:
            if self.low is not None or self.high is not None or self.log:
                raise ValueError("give either choices or a range (low, high, log), not both")
            bad = [c for c in self.choices if not VALUE.match(value_text(c))]
            if bad:
                raise ValueError(
                    f"choice {shown(bad[0])}: a choice is a plain token (letters, digits, . _ + -)"
                )
            return self
        if self.low is None or self.high is None:
            raise ValueError("a range needs low and high (or give choices)")
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or self.low >= self.high:
            raise ValueError(f"low {self.low:g} must be below high {self.high:g}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0 (got {self.low:g})")
        return self


class Optimize(BaseModel):
    """A search over training options (``hpcscale optimize``)."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["gp", "evolution"] = "gp"
    space: dict[Option, Param] = Field(min_length=1)
    objective: str = Field("val_accuracy", pattern=r"^[A-Za-z0-9_.]{1,60}$")
    direction: Literal["maximize", "minimize"] = "maximize"
    trials: int = Field(12, ge=1, le=10_000)
    parallel: int = Field(2, ge=1, le=1000)
    population: int | None = Field(
        None, ge=2, description="evolution: trials per generation (default: parallel, at least 4)"
    )
    mutation: float = Field(0.05, ge=0, le=1, description="evolution: mutation's spread")
    seed: int = 0

    def generation_size(self) -> int:
        return self.population or max(self.parallel, 4)


class StudySpec(BaseModel):
    """Everything a study is (see the module's docstring)."""

    model_config = ConfigDict(extra="forbid")

    site: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
    gpus: list[int] | None = None
    nodes: list[int] | None = None
    ranks: list[int] | None = None
    walltime: str | None = None
    data: str | None = None
    model: str | None = None
    target_loss: float | None = None
    options: list[str] = Field(default_factory=list)
    sweep: dict[Option, list[Value]] = Field(default_factory=dict)
    kfold: int | None = Field(None, ge=2, le=100)
    repeats: int = Field(1, ge=1, le=100)
    optimize: Optimize | None = None
    requests: Requests = Field(default_factory=Requests)
    # a training command run unmodified on every rank and measured (``hpcscale.command``);
    # ``options`` are then the measuring wrapper's (--target, --target-loss, --ttl-window)
    command: list[str] | None = None

    @model_validator(mode="after")
    def _check(self) -> StudySpec:
        if self.command is not None:
            check_command(self)
        given = [k for k in SIZE_KEYS if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("give exactly one of gpus, nodes or ranks (a list of sizes)")
        sizes = getattr(self, given[0])
        if min(sizes) < 1 or len(set(sizes)) != len(sizes):
            raise ValueError(f"{given[0]}: sizes are positive and each given once (got {sizes})")
        bad = [o for o in self.options if o.split("=", 1)[0] in ("--model", "--data", "--out")]
        if bad:
            name = bad[0].split("=", 1)[0]
            raise ValueError(
                f"options: {name} is the study's own field, not a training option; give it as "
                f"{name[2:]}: (or {name} on the command line)"
            )
        for name, values in self.sweep.items():
            if name in RESERVED or name in SIZE_KEYS:
                what = "sizes are gpus/nodes/ranks" if name in SIZE_KEYS else "the study sets it"
                raise ValueError(f"sweep.{name}: cannot be swept ({what})")
            if not values:
                raise ValueError(f"sweep.{name}: give at least one value")
            for v in values:
                if not VALUE.match(value_text(v)):
                    raise ValueError(
                        f"sweep.{name}: value {shown(v)} is not a plain token (letters, digits, "
                        ". _ + -; at most 40)"
                    )
            texts = [value_text(v) for v in values]
            if len(set(texts)) != len(texts):
                raise ValueError(f"sweep.{name}: a value is given twice ({texts})")
        if self.optimize is not None:
            if len(sizes) != 1:
                raise ValueError("optimize: give one size (every trial is one job of that size)")
            if self.sweep or self.kfold:
                raise ValueError("optimize: cannot be combined with sweep or kfold in one study")
            for name in self.optimize.space:
                if name in RESERVED or name in SIZE_KEYS:
                    raise ValueError(f"optimize.space.{name}: cannot be searched")
        return self

    @property
    def size_key(self) -> str:
        return next(k for k in SIZE_KEYS if getattr(self, k))

    @property
    def sizes(self) -> list[int]:
        return list(getattr(self, self.size_key))

    @property
    def kind(self) -> str:
        """scaling, sweep, kfold or optimize: what the report shows."""
        if self.optimize is not None:
            return "optimize"
        if self.kfold:
            return "kfold"
        return "sweep" if self.sweep else "scaling"

    def train_args(self) -> list[str]:
        """The training core's options every job of the study gets (before its point's own;
        the model is not among them: ``model``)."""
        args = list(self.options)
        if self.target_loss is not None:
            args += ["--target-loss", value_text(self.target_loss)]
        return args

    def grid(self) -> list[dict[str, Value]]:
        """Every combination of the swept values, in the order given ({} without a sweep)."""
        names = list(self.sweep)
        return [dict(zip(names, combo, strict=True))
                for combo in itertools.product(*self.sweep.values())]  # fmt: skip


def check_command(spec: StudySpec) -> None:
    """A study of a training command: the command given, and nothing that only the training
    core can do."""
    if not spec.command or not all(isinstance(a, str) and a for a in spec.command):
        raise ValueError("command: give the command as a list of words, e.g. [python, train.py]")
    if "\x00" in "".join(spec.command):
        raise ValueError("command: a word holds a NUL character")
    for name in ("model", "sweep", "kfold", "optimize"):
        if getattr(spec, name):
            raise ValueError(
                f"{name}: a study of a command runs the command as given; {name} is the "
                "training core's (give it to the command, or drop the command)"
            )


def point_args(params: dict[str, Value]) -> list[str]:
    """A point's own training options: ``{"batch": 64}`` → ``["--batch", "64"]``; a switch is
    its flag or the flag's ``--no-`` form: ``{"cuda_graph": False}`` → ``["--no-cuda-graph"]``."""
    out: list[str] = []
    for name, v in params.items():
        if isinstance(v, bool):
            out.append(flag(name) if v else "--no-" + flag(name)[2:])
        else:
            out += [flag(name), value_text(v)]
    return out


def point_label(size: str, params: dict[str, Value]) -> str:
    """A job's label: the size, then each swept option and value (``2r-batch64``)."""
    return "-".join([size, *(f"{name}{value_text(v)}" for name, v in params.items())])


def parse_sweep(texts: list[str]) -> dict[str, list[Value]]:
    """``--sweep batch=64,512,1024`` (repeatable: a grid) as the spec's ``sweep`` mapping."""
    sweep: dict[str, list[Value]] = {}
    for text in texts:
        name, eq, rest = text.partition("=")
        name = name.strip().removeprefix("--").replace("-", "_")
        if not eq or not re.match(OPTION, name) or not rest.strip():
            raise UserError(
                f"--sweep {shown(text)}: expected OPTION=V1,V2,... (e.g. batch=64,512,1024), "
                "OPTION a training option's name"
            )
        if name in sweep:
            raise UserError(f"--sweep {shown(text)}: {name} is swept twice")
        sweep[name] = [_typed(v.strip()) for v in rest.split(",")]
    return sweep


def _typed(text: str) -> Value:
    """A swept value as YAML would read it: 64 → int, 1e-3 → float, true → bool, adam → str."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def validate(raw: Any, where: str) -> StudySpec:
    """A spec from parsed YAML (or flags); a problem names ``where``, the field and value."""
    if not isinstance(raw, dict):
        raise UserError(f"{where}: a study spec is a YAML mapping (site:, ranks:, ...)")
    try:
        return StudySpec.model_validate(raw)
    except ValidationError as exc:
        raise UserError(f"{where}: {describe(exc, StudySpec)}") from None


def load(path: Path) -> StudySpec:
    """A spec file (or a study folder's kept one), validated."""
    raw, where = read_base(path)
    return validate(raw, where)


def load_space(path: Path) -> dict[str, Param]:
    """A search-space file: a mapping of option names to ranges or choices."""
    raw = load_yaml(Path(path))
    if not isinstance(raw, dict) or not raw:
        raise UserError(
            f"{path}: a search space is a YAML mapping of training options to ranges, e.g. "
            "lr: {low: 1.0e-4, high: 1.0e-1, log: true}"
        )
    try:
        return Optimize.model_validate({"space": raw}).space
    except ValidationError as exc:
        raise UserError(f"{path}: {describe(exc, Optimize).removeprefix('space.')}") from None


def dump(spec: StudySpec) -> str:
    data = spec.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
    data = {"site": spec.site, **data}
    return yaml.safe_dump(data, sort_keys=False)


def with_flags(base: dict[str, Any] | None, flags: dict[str, Any], where: str) -> StudySpec:
    """A spec from a file's mapping (``base``, None: none) with the command line's flags in
    place of its fields (a flag given as None was not given): sizes replace sizes, training
    options are added after the file's, requests and optimisation settings replace theirs."""
    raw = dict(base or {})
    sizes = {k: flags.pop(k) for k in SIZE_KEYS if flags.get(k) is not None}
    if sizes:
        for k in SIZE_KEYS:
            raw.pop(k, None)
        raw.update(sizes)
    raw["options"] = [*raw.get("options", []), *flags.pop("options", [])]
    for block in ("requests", "optimize"):
        given = {k: v for k, v in flags.pop(block, {}).items() if v is not None}
        if given:
            current = raw.get(block) if isinstance(raw.get(block), dict) else {}
            raw[block] = {**current, **given}
    raw.update({k: v for k, v in flags.items() if v is not None})
    return validate(raw, where)


def read_base(path: Path) -> tuple[dict[str, Any], str]:
    """A spec file's (or a study folder's kept spec's) mapping, unvalidated, and its name."""
    path = Path(path)
    if path.is_dir():
        if not (path / SPEC_NAME).exists():
            raise UserError(
                f"{path}: no {SPEC_NAME} in this folder (a study made before study specs, or not "
                "a study); give a spec file or a study folder that has one"
            )
        path = path / SPEC_NAME
    if not path.exists():
        raise UserError(f"{path}: no such file (a study spec, YAML)")
    raw = load_yaml(path)
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a study spec is a YAML mapping (site:, ranks:, ...)")
    return raw, str(path)


# What a study computes: a folder's jobs mean one study only while these stay the same (more
# sizes, another walltime or other scheduler requests run the same study; a search may grow its
# budget or parallelism).
SAME_STUDY = ("site", "model", "data", "target_loss", "options", "sweep", "kfold", "optimize")


def difference(old: StudySpec, new: StudySpec, models: tuple[str, str]) -> list[str]:
    """How ``new`` differs from the study ``old`` made, field by field in words (``model
    cms-jets-small → scnet-small``); ``models`` are the two models as resolved (a spec without
    one trains its site's)."""

    def shown_value(name: str, spec: StudySpec, model: str) -> str:
        if name == "model":
            return model
        if name == "options":
            return " ".join(spec.options) or "none"
        if name == "optimize" and spec.optimize is not None:
            opt = spec.optimize.model_dump(mode="json", exclude={"trials", "parallel"})
            return yaml.safe_dump(opt, default_flow_style=True, width=10**6).strip()
        value = getattr(spec, name)
        if value in (None, {}, []):
            return "none"
        if isinstance(value, dict):
            return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
        return str(value)

    out = []
    for name in SAME_STUDY:
        a, b = shown_value(name, old, models[0]), shown_value(name, new, models[1])
        if a != b:
            out.append(f"{name} {a} → {b}")
    return out
