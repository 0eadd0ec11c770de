"""The rank's command line: the core's options plus the selected workload's own.

``--model NAME`` picks a workload (``hpcscale.workloads``); its pydantic config adds its options.
Both configs are pydantic models, and their fields become argparse options from their real types
(``bool`` → ``--x/--no-x``, ``Literal`` → choices, ``X | None`` → optional X) and descriptions.
"""

from __future__ import annotations

import argparse
import types
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hpcscale import workloads
from hpcscale.errors import UserError
from hpcscale.train import stages


class CoreConfig(BaseModel):
    """Options of the training core, the same for every workload."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    data: Path = Field(description="data set folder (from `hpcscale data generate`)")
    out: Path = Field(description="job folder for records, summary.json and mlperf.log")
    model: str = Field(workloads.DEFAULT, description="what to train (models: listed above)")
    site: str = "local"
    engine: Literal["torch", "horovod", "master-worker"] = "torch"
    update_rule: Literal["downpour", "easgd", "gem"] = Field(
        "downpour", description="engine master-worker: downpour (the master applies each "
        "gradient as it arrives), easgd (workers train local models, pulled toward the "
        "master's every --easgd-period steps by --easgd-alpha) or gem (gradient energy "
        "matching: each worker scales its update so that all workers together move the model "
        "no more than one momentum process would; --gem-kappa, --gem-momentum)"
    )  # fmt: skip
    max_staleness: int | None = Field(
        None, ge=0, description="engine master-worker, downpour or gem: an update more than this "
        "many updates old is answered with fresh weights instead of being applied (default: no "
        "limit)"
    )  # fmt: skip
    group_size: int = Field(
        1, ge=1, description="engine master-worker: ranks per worker; they average their batch's "
        "gradient among themselves before their leader talks to the master"
    )  # fmt: skip
    easgd_alpha: float = Field(
        0.5, gt=0, lt=1, description="easgd: the moving rate (share of the distance to the "
        "master's model a worker moves, and the master toward the worker)"
    )  # fmt: skip
    easgd_period: int = Field(1, ge=1, description="easgd: worker steps between exchanges")
    gem_kappa: float = Field(
        1.0, gt=0, description="gem: the energy allowed, as a multiple of the momentum proxy's"
    )  # fmt: skip
    gem_momentum: float = Field(
        0.9, ge=0, lt=1, description="gem: the momentum of the proxy process each worker keeps"
    )  # fmt: skip
    horovod_timeline: bool = Field(
        False, description="write Horovod's timeline (HOROVOD_TIMELINE, Chrome trace format) to "
        "horovod-timeline.json in the job folder; engine horovod only"
    )  # fmt: skip
    batch: int | None = Field(None, ge=1, description="minibatch per rank; default: the model's")
    epochs: float = Field(10.0, gt=0, description="stop after this many epochs (fractions allowed)")
    target_loss: float | None = Field(
        None, description="TTL target on the smoothed, rank-averaged training loss; default: "
        "the model's"
    )  # fmt: skip
    ttl_window: int = Field(
        25, ge=1, description="steps in the trailing mean that smooths the global loss for TTL"
    )
    stop_at_target: bool = Field(True, description="stop when the target loss is reached")
    time_limit: float | None = Field(
        None, description="seconds the job may run (its walltime); training stops stop_margin "
        "before"
    )  # fmt: skip
    stop_margin: float = Field(60.0, ge=0)
    max_requeues: int | None = Field(
        None, ge=0, description="walltime requeues allowed (default: no limit of the core's); "
        "at that many the job stops at its time limit instead of checkpointing"
    )  # fmt: skip
    collective_timeout: float = Field(
        300.0, gt=0, description="seconds a collective may wait for a dead or hung peer"
    )
    seed: int = 0
    data_placement: Literal["shared", "node-local", "image"] = Field(
        "shared", description="where the ranks read the data set: shared (where --data is), "
        "node-local (copied first to the node's $HPCSCALE_NODE_LOCAL, else $TMPDIR, else /tmp, "
        "once per node; the copy is DLT's 'placement' part) or image (inside the site's image, "
        "built with `hpcscale container build --data DIR`)"
    )  # fmt: skip
    max_events: int | None = Field(
        None, ge=1, description="use at most this many training events (all ranks together)"
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    model_parallel: int = Field(
        1, ge=1, description="pipeline stages: each data-parallel rank becomes K consecutive "
        "ranks on one node (one GPU each), holding consecutive stages of the model; --ranks "
        "counts them all (1: data parallelism only)"
    )  # fmt: skip
    stage_cuts: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_]+(,[A-Za-z0-9_]+)*$", description="K-1 of the model's cut "
        "points, comma-separated, where its stages end; default: spread evenly"
    )  # fmt: skip
    micro_batches: int | None = Field(
        None, ge=1, description="micro-batches a minibatch is cut into in the pipeline (a "
        "divisor of --batch); default: the smallest divisor that is at least K"
    )  # fmt: skip
    pipeline_schedule: Literal["1f1b", "gpipe"] = Field(
        "1f1b", description="torch.distributed.pipelining's schedule of the micro-batches"
    )
    lr_scaling: Literal["none", "linear", "sqrt"] | None = Field(
        None, description="learning rate of N ranks: the one-rank rate × 1, N or √N (Goyal et "
        "al. 2017: linear); default: the model's"
    )  # fmt: skip
    warmup_epochs: float | None = Field(
        None, ge=0, description="epochs of linear warm-up from the one-rank learning rate to the "
        "scaled one; default: the model's"
    )  # fmt: skip
    synthetic_data: bool = Field(
        False, description="the control run: stage as usual, then train every step on the first "
        "minibatch kept on the device (no reads, no decompression, no copies in training): a "
        "loader-bound job is faster this way, a compute- or network-bound one is not"
    )  # fmt: skip
    noise_split: bool = Field(
        False, description="one rank: measure the gradient noise scale by splitting each "
        "minibatch in two halves (a second backward per step); ignored by several ranks, which "
        "measure it for free"
    )  # fmt: skip
    study: str = ""
    job: str = ""

    @model_validator(mode="after")
    def _timeline_needs_horovod(self) -> CoreConfig:
        if self.horovod_timeline and self.engine != "horovod":
            raise ValueError(f"--horovod-timeline needs --engine horovod (not {self.engine})")
        if self.model_parallel > 1 and self.engine != "torch":
            raise ValueError(
                f"--model-parallel {self.model_parallel} needs --engine torch (its process "
                f"groups and point-to-point sends), not {self.engine}"
            )
        pipeline_only = {"stage_cuts": "--stage-cuts", "micro_batches": "--micro-batches"}
        for field_name, flag in pipeline_only.items():
            if self.model_parallel == 1 and getattr(self, field_name) is not None:
                raise ValueError(f"{flag} needs --model-parallel 2 or more")
        return self

    @model_validator(mode="after")
    def _master_worker_options(self) -> CoreConfig:
        if self.engine != "master-worker":
            for name in ("max_staleness", "group_size", "update_rule", "easgd_alpha",
                         "easgd_period", "gem_kappa", "gem_momentum"):  # fmt: skip
                if getattr(self, name) != CoreConfig.model_fields[name].default:
                    flag = "--" + name.replace("_", "-")
                    raise ValueError(f"{flag} needs --engine master-worker (not {self.engine})")
        if self.update_rule == "easgd" and self.max_staleness is not None:
            raise ValueError("--max-staleness applies to --update-rule downpour or gem, not easgd")
        for name, rule in (("easgd_alpha", "easgd"), ("easgd_period", "easgd"),
                           ("gem_kappa", "gem"), ("gem_momentum", "gem")):  # fmt: skip
            default = CoreConfig.model_fields[name].default
            if self.update_rule != rule and getattr(self, name) != default:
                flag = "--" + name.replace("_", "-")
                raise ValueError(f"{flag} needs --update-rule {rule} (not {self.update_rule})")
        return self


def add_options(ap: argparse.ArgumentParser, model: type[BaseModel], skip: set[str]) -> None:
    """One ``--flag`` per field of ``model`` (except ``skip``), typed from its annotation."""
    title = model.__doc__.strip().splitlines()[0].rstrip(".") if model.__doc__ else None
    group = ap.add_argument_group(title)
    for name, info in model.model_fields.items():
        if name in skip:
            continue
        flag = "--" + name.replace("_", "-")
        kwargs: dict[str, Any] = {"help": info.description, "dest": name}
        ann = _unwrap_optional(info.annotation)
        if info.is_required():
            kwargs["required"] = True
        else:
            kwargs["default"] = info.default
        if ann is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(ann) is Literal:
            kwargs["choices"] = [str(c) for c in typing.get_args(ann)]
        elif ann in (int, float, str, Path):
            kwargs["type"] = ann
            kwargs["metavar"] = {int: "N", float: "X", str: "TEXT", Path: "PATH"}[ann]
        else:
            raise TypeError(f"{model.__name__}.{name}: no command-line form for {ann}")
        group.add_argument(flag, **kwargs)


def _unwrap_optional(ann: Any) -> Any:
    if typing.get_origin(ann) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return ann


def build(model: type[BaseModel], values: dict[str, Any]) -> Any:
    """Validate ``values`` into ``model``; a bad value is one line naming the option."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        if not err["loc"]:  # a check across options: its message names them
            raise UserError(str(err["msg"]).removeprefix("Value error, ")) from None
        name = "--" + str(err["loc"][0]).replace("_", "-")
        raise UserError(f"{name} {err.get('input')!r}: {err['msg']}") from None


class OptionParser(argparse.ArgumentParser):
    """argparse that raises ``UserError`` (one line, exit 2 from the CLI and the rank) instead
    of printing its usage and exiting, so ``hpcscale run``/``submit`` can check a rank's
    options before any rank starts."""

    def error(self, message: str) -> typing.NoReturn:
        prefix = "unrecognized arguments: "
        if message.startswith(prefix):
            first = message[len(prefix) :].split()[0]
            raise UserError(
                f"unknown option {first!r} (neither hpcscale's nor the training core's; "
                f"`{self.prog} --model NAME --help` lists the core's and the model's)"
            )
        raise UserError(f"training option {message}")


def parser(workload_config: type[BaseModel] | None, prog_note: str = "") -> argparse.ArgumentParser:
    ap = OptionParser(
        prog="python -m hpcscale.train",
        description="One rank of an hpcscale training job." + prog_note,
    )
    add_options(ap, CoreConfig, skip=set())
    if workload_config is not None:
        add_options(ap, workload_config, skip={"model"})
    return ap


def parse(argv: list[str] | None = None) -> tuple[CoreConfig, Any]:
    """The core's and the workload's configs from a rank's command line."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--model", default=CoreConfig.model_fields["model"].default)
    known, _ = pre.parse_known_args(argv)
    spec = workloads.get(known.model)
    note = f" Options for --model {known.model}; other models: {', '.join(workloads.names())}."
    ns = vars(parser(spec.Config, note).parse_args(argv))
    core_keys = set(CoreConfig.model_fields)
    core = build(CoreConfig, {k: v for k, v in ns.items() if k in core_keys})
    own = {k: v for k, v in ns.items() if k not in core_keys}
    stages.check(core, spec, core.batch or spec.default_batch)  # the pipeline's shape
    return core, build(spec.Config, {**own, "model": known.model})
