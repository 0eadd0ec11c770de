"""Every data-parallel engine, by name: one module each (``hpcscale.train.engine.<module>``
defines ``ENGINE``, its class), loaded when first asked for, so listing the names imports neither
torch nor Horovod. A new engine is one module and one line in ``ENGINES`` (the idiom:
``hpcscale.registry``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from hpcscale.registry import Registry

if TYPE_CHECKING:
    from hpcscale.train.engine.base import Engine
    from hpcscale.train.jobenv import JobEnvironment

ENGINES: Registry[type[Engine]] = Registry(
    "engine",
    {
        "torch": "hpcscale.train.engine.torch_dist",
        "horovod": "hpcscale.train.engine.horovod",
        "master-worker": "hpcscale.train.engine.master_worker",
    },
    attr="ENGINE",
    field="engine",
)


def names() -> tuple[str, ...]:
    return ENGINES.names()


def make_engine(
    name: str,
    jobenv: JobEnvironment,
    timeout_s: float,
    device: str,
    timeline: Path | None = None,
) -> Engine:
    """The engine ``name``, started; ``timeline``: where it writes its timeline (Horovod's)."""
    engine = ENGINES.get(name)
    if timeline is None:
        return engine(jobenv, timeout_s, device)
    if not engine.writes_timeline:
        raise ValueError(f"engine {name!r} writes no timeline")
    return engine(jobenv, timeout_s, device, timeline=timeline)
