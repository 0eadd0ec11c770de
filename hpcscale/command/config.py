"""The options of one measured rank: ``python -m hpcscale.command [OPTIONS] -- CMD ARGS...``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hpcscale.errors import UserError
from hpcscale.train.config import OptionParser, add_options, build

# --target KEY>=VALUE or KEY<=VALUE: an MLPerf log key (eval_accuracy) and the value that ends
# TTL
TARGET = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]{0,79})\s*(>=|<=)\s*([-+0-9.eE]+|inf)\s*$")


@dataclass(frozen=True)
class Target:
    key: str
    op: str  # ">=" or "<="
    value: float

    def met(self, value: float) -> bool:
        return value >= self.value if self.op == ">=" else value <= self.value

    def __str__(self) -> str:
        return f"{self.key}{self.op}{self.value:g}"


def parse_target(text: str) -> Target:
    m = TARGET.match(text)
    if not m:
        raise ValueError(
            f"{text!r}: expected KEY>=VALUE or KEY<=VALUE (e.g. eval_accuracy>=0.9), KEY an "
            "MLPerf log key"
        )
    try:
        value = float(m.group(3))
    except ValueError:
        raise ValueError(f"{text!r}: {m.group(3)!r} is not a number") from None
    return Target(m.group(1), m.group(2), value)


class CommandConfig(BaseModel):
    """Options of a measured training command"""

    model_config = ConfigDict(extra="forbid", frozen=True)

    out: Path = Field(description="job folder for records, statuses, summary.json, output")
    site: str = "local"
    engine: Literal["torch", "horovod"] = "torch"
    study: str = ""
    job: str = ""
    time_limit: float | None = Field(
        None, description="seconds the job may run (its walltime); the command is stopped "
        "(SIGTERM, then SIGKILL) just before"
    )  # fmt: skip
    stop_margin: float = Field(5.0, ge=0, description="seconds before the time limit to stop")
    target: str | None = Field(
        None, description="TTL target on an MLPerf log key: KEY>=VALUE or KEY<=VALUE "
        "(default: run_stop with status success)"
    )  # fmt: skip
    target_loss: float | None = Field(
        None, description="TTL target on the smoothed global loss that hpcscale.track records"
    )
    ttl_window: int = Field(25, ge=1, description="steps in the smoothed loss (hpcscale.track)")
    max_requeues: int | None = Field(None, ge=0, description="(ignored: commands are not requeued)")

    @field_validator("target")
    @classmethod
    def _target(cls, v: str | None) -> str | None:
        if v is not None:
            parse_target(v)
        return v

    def parsed_target(self) -> Target | None:
        return parse_target(self.target) if self.target else None


def split(argv: list[str]) -> tuple[list[str], list[str]]:
    """The options and the command of ``OPTIONS -- CMD ARGS...``."""
    if "--" not in argv:
        raise UserError("no command: give it after --, e.g. -- python train.py")
    i = argv.index("--")
    command = argv[i + 1 :]
    if not command:
        raise UserError("no command after --; give it, e.g. -- python train.py")
    return argv[:i], command


def parse(argv: list[str]) -> tuple[CommandConfig, list[str]]:
    """The rank's options and the command; a bad option is one line (``UserError``)."""
    options, command = split(argv)
    ap = OptionParser(prog="python -m hpcscale.command", description="One measured rank.")
    add_options(ap, CommandConfig, skip=set())
    ns = vars(ap.parse_args(options))
    return build(CommandConfig, ns), command
