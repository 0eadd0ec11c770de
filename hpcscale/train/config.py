"""Training configuration: one dataclass, parsed from the rank's command line."""

from __future__ import annotations

import argparse
from dataclasses import MISSING, dataclass, fields
from pathlib import Path

from hpcscale.errors import UserError


@dataclass(frozen=True)
class TrainConfig:
    data: Path
    out: Path
    site: str = "local"
    engine: str = "torch"
    model: str = "jishnet"
    loss: str = "paper"
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_epochs: float = 5.0
    batch: int = 7
    epochs: float = 10.0
    target_loss: float = 1.2
    ttl_window: int = 25
    stop_at_target: bool = True
    time_limit: float | None = None
    stop_margin: float = 60.0
    collective_timeout: float = 300.0
    seed: int = 0
    max_events: int | None = None
    codec: str = "blosclz:9:none"
    blosc_threads: int = 0
    prefetch: int = 2
    bf16: bool = False
    channels_last: bool = False
    device: str = "auto"
    study: str = ""
    job: str = ""

    def __post_init__(self) -> None:
        checks = [
            (self.batch >= 1, f"--batch must be at least 1 (got {self.batch})"),
            (self.epochs > 0, f"--epochs must be positive (got {self.epochs})"),
            (self.ttl_window >= 1, f"--ttl-window must be at least 1 (got {self.ttl_window})"),
            (self.collective_timeout > 0, "--collective-timeout must be positive"),
            (
                self.loss in ("paper", "standard"),
                f"--loss must be paper or standard (got {self.loss!r})",
            ),
            (
                self.optimizer in ("adamw", "adam", "sgd"),
                f"--optimizer must be adamw, adam or sgd (got {self.optimizer!r})",
            ),
            (
                self.engine in ("torch", "horovod"),
                f"--engine must be torch or horovod (got {self.engine!r})",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(message)


HELP = {
    "data": "data set folder (from `hpcscale data generate`)",
    "out": "job folder for records, summary.json and mlperf.log",
    "loss": "paper: cross-entropy on the softmax output (the paper's curves; floor 0.905); "
    "standard: cross-entropy on logits",
    "epochs": "stop after this many epochs (fractions allowed)",
    "target_loss": "TTL target on the smoothed, rank-averaged training loss",
    "ttl_window": "steps in the trailing mean that smooths the global loss for TTL",
    "time_limit": "seconds the job may run (its walltime); training stops stop_margin before",
    "collective_timeout": "seconds a collective may wait for a dead or hung peer",
    "codec": "Blosc codec:level:shuffle, e.g. blosclz:9:none, zstd:9:none, lz4:5:byte",
    "optimizer": "adamw (default): Adam with decoupled weight decay; adam: weight decay as L2 in "
    "the gradient (torch.optim.Adam); sgd: Goyal et al. warm-up and linear LR scaling",
    "max_events": "use at most this many training events (all ranks together)",
}


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m hpcscale.train", description="One rank of an hpcscale training job."
    )
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        kind = {
            "Path": Path,
            "int": int,
            "float": float,
            "str": str,
            "float | None": float,
            "int | None": int,
        }.get(str(f.type), str)
        if str(f.type) == "bool":
            ap.add_argument(
                flag,
                action=argparse.BooleanOptionalAction,
                default=f.default,
                help=HELP.get(f.name),
            )
        elif f.default is MISSING:
            ap.add_argument(flag, type=kind, required=True, help=HELP.get(f.name))
        else:
            ap.add_argument(flag, type=kind, default=f.default, help=HELP.get(f.name))
    return ap


def parse(argv: list[str] | None = None) -> TrainConfig:
    ns = parser().parse_args(argv)
    return TrainConfig(**vars(ns))
