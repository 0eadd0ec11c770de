"""The workload component: what a training job trains, apart from how every rank trains it.

A workload (JishNet, SCNet, …) owns its data path, model(s), optimizer(s), one training step,
evaluation and the fields it adds to records and the summary. The loop (``train/loop.py``) owns
everything a workload shares: ranks and engine, the one allreduce per step, records, TTL, the stop
vote, walltime checkpoint/requeue and the summary. The loop never names a workload; it talks to
this interface only, so a new workload is a new module and a line in ``hpcscale.workloads``.

The life of a workload on one rank (every call is made by the loop, in this order)::

    wl = Spec(config, RankContext(...))      # cheap: no data, no model yet
    staged = wl.stage()                       # this rank's share of the data (timed into DLT)
    wl.build(steps_per_epoch)                 # models, optimizers, schedules on ctx.device
    for order in epochs:                      # order: this rank's minibatches as index arrays
        for batch in wl.batches(order):
            out = wl.step(batch)              # forward + backward: gradients in the parameters
            …                                 # the loop averages them with the metrics
            wl.update()                       # optimizer step(s), schedules
    metrics = wl.evaluate()                   # validation; every rank, collectives allowed

A workload whose model is a chain of layers may also be cut into pipeline stages
(``--model-parallel K``, ``train/pipeline.py``): it names the places in ``cut_points`` and returns
the stages for chosen cuts from ``split`` (after ``build``); the core runs one stage per process.

A workload that needs an intermediate collective (a GAN's discriminator update before the
generator's step) may call ``ctx.engine`` inside ``step``; the loop's allreduce carries the final
gradients of ``parameters()`` and the step's metrics.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict

from hpcscale.errors import DataError, UserError

if TYPE_CHECKING:
    import numpy as np
    import torch

    from hpcscale.train.engine.base import Engine


class WorkloadConfig(BaseModel):
    """Base of every workload's own options; each field becomes a ``--flag`` of the rank's
    command line (``python -m hpcscale.train --model NAME --help`` lists them)."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    model: str  # the preset this workload was selected by (``--model``)


@dataclass(frozen=True)
class RankContext:
    """What a workload may know of the job it runs in."""

    rank: int
    world_size: int
    device: torch.device
    engine: Engine
    data: Path
    batch: int  # minibatch per rank
    seed: int
    max_events: int | None  # training events to use, all ranks together (None: all)
    # where compiled artefacts (torch.compile's) go: beside the job folder, so that the next job
    # of a study, or the next run, reuses them instead of compiling again
    compile_cache: Path | None = None
    # learning-rate scaling with ranks (the core's --lr-scaling, --warmup-epochs, resolved with
    # the workload's defaults); a workload applies it with ``workloads.schedule.lr_schedule``
    lr_scaling: str = "none"
    warmup_epochs: float = 0.0


class Batch(Protocol):
    """What the loop needs of a workload's minibatch; the rest is the workload's business."""

    size: int  # samples in it
    timings: dict[str, float]  # seconds, named ``*_s``, into the step record (with a pipeline
    # stage's figures beside them: train/pipeline.py)


@dataclass
class StepResult:
    """A step's local figures, before the allreduce (0-d tensors or floats)."""

    loss: Any
    metrics: dict[str, Any] = field(default_factory=dict)  # keys as in ``metric_names``


@dataclass
class Split:
    """A built model cut at the chosen cut points (``Workload.split``): ``stages`` are consecutive
    modules sharing the workload's parameters (stage i takes stage i-1's one output tensor), and
    what the pipeline needs of a batch and of the last stage's output."""

    stages: list[torch.nn.Module]
    inputs: Callable[[Batch], torch.Tensor]  # the first stage's input of a minibatch
    target: Callable[[Batch], torch.Tensor]  # what the loss compares the output with
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (output, target) → mean loss
    metrics: Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]  # keys: metric_names


@dataclass
class Staged:
    """The outcome of ``stage``: sizes for the loop, and what goes into records and summary."""

    train_samples: int  # training samples of all ranks together
    local_samples: int  # this rank's
    record: dict[str, Any] = field(default_factory=dict)  # the "staged" record line
    summary: dict[str, Any] = field(default_factory=dict)  # the summary's "data" block


class Workload(ABC):
    name: ClassVar[str]
    Config: ClassVar[type[WorkloadConfig]]
    sample_unit: ClassVar[str] = "samples"  # "images", "showers", … (reports label with it)
    default_batch: ClassVar[int] = 8
    default_target_loss: ClassVar[float] = 1.0
    metric_names: ClassVar[tuple[str, ...]] = ()  # local metrics averaged with the loss
    # where the model may be cut into pipeline stages, in model order (cut after that part);
    # empty: it cannot be (``--model-parallel`` is refused)
    cut_points: ClassVar[tuple[str, ...]] = ()
    cut_refusal: ClassVar[str] = "its model is not a chain of layers the core can cut"
    # whether rank 0's ``parts()`` hold everything a requeued job resumes from (not so for a
    # pipeline stage: each rank trains its own stage); if not, the job stops at its time limit
    checkpointable: ClassVar[bool] = True
    # whether the workload applies ctx.lr_scaling/warmup_epochs (``schedule.lr_schedule``);
    # the core refuses --lr-scaling for one that does not
    scales_lr: ClassVar[bool] = False
    default_lr_scaling: ClassVar[str] = "none"
    default_warmup_epochs: ClassVar[float] = 0.0
    # the numbers ``evaluate`` puts in the summary (``a.b``: nested), which `optimize
    # --objective` is checked against before any trial runs; () when a workload does not say
    figures: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: WorkloadConfig, ctx: RankContext) -> None:
        self.config = config
        self.ctx = ctx

    @classmethod
    def check(
        cls,
        config: WorkloadConfig,
        data: Path,
        world_size: int,
        batch: int,
        max_events: int | None = None,
    ) -> int | None:
        """Before any rank starts: raise ``UserError`` if this data set cannot be trained with
        this configuration on ``world_size`` ranks (wrong kind of data, images too small, fewer
        than one minibatch per rank, counting at most ``max_events`` training samples). Reads
        metadata only; must be fast. Returns the number of training samples when it knows it
        (for notes such as "TTL cannot be reached")."""
        return None

    @classmethod
    def training_samples(
        cls, data: Path, available: int, world_size: int, batch: int, max_events: int | None
    ) -> int:
        """The training samples a job uses (``available``, at most ``max_events``); refuses a data
        set that gives a rank less than one minibatch. For ``check``."""
        train = available if max_events is None else min(available, max_events)
        if (train // world_size) // batch < 1:
            raise DataError(
                f"{data}: {train} training {cls.sample_unit} over {world_size} ranks give fewer "
                f"than one minibatch of {batch} per rank; need at least {world_size * batch} "
                "(generate more or use fewer ranks)"
            )
        return train

    @classmethod
    def lr_defaults(cls, config: WorkloadConfig) -> tuple[str, float]:
        """The learning-rate scaling and warm-up epochs when the core's options leave them."""
        return cls.default_lr_scaling, cls.default_warmup_epochs

    def split_batch(self, batch: Batch) -> tuple[Batch, Batch]:
        """The two halves of a minibatch (the core's ``--noise-split`` on one rank). This
        default halves a dataclass batch whose tensors all have ``size`` rows; a workload whose
        batches are otherwise made (sparse coordinates) refuses unless it overrides this."""
        import torch  # only for the isinstance check; the workload module imported it already

        if not is_dataclass(batch) or batch.size < 2:
            raise UserError(f"--noise-split: {self.name}'s minibatches cannot be split in two")
        half = batch.size // 2
        first, second = {"size": half}, {"size": batch.size - half}
        for f in fields(batch):
            value = getattr(batch, f.name)
            if isinstance(value, torch.Tensor):
                if value.dim() == 0 or value.shape[0] != batch.size:
                    raise UserError(
                        f"--noise-split: {self.name}'s minibatch field {f.name!r} does not have "
                        "one row per sample, so it cannot be split in two"
                    )
                first[f.name], second[f.name] = value[:half], value[half:]
        halves = replace(batch, **first), replace(batch, **second)
        return halves  # type: ignore[return-value]

    @abstractmethod
    def stage(self) -> Staged:
        """Load this rank's share of the training and validation data (the paper's DLT)."""

    @abstractmethod
    def build(self, steps_per_epoch: int) -> None:
        """Create the model(s), optimizer(s) and schedules on ``ctx.device``."""

    @abstractmethod
    def parts(self) -> dict[str, Any]:
        """Everything a checkpoint must hold, by name: modules, optimizers, schedules (anything
        with ``state_dict``/``load_state_dict``). Modules are broadcast from rank 0."""

    @abstractmethod
    def parameters(self) -> Sequence[torch.Tensor]:
        """The parameters whose gradients the loop averages over ranks each step."""

    @abstractmethod
    def batches(self, order: Sequence[np.ndarray]) -> Iterator[Batch]:
        """Minibatches on the device for ``order`` (arrays of local sample indices)."""

    @abstractmethod
    def step(self, batch: Batch) -> StepResult:
        """Forward and backward on one minibatch; leave the gradients in ``parameters()``."""

    @abstractmethod
    def update(self) -> None:
        """Apply the averaged gradients: optimizer step(s) and schedules."""

    @abstractmethod
    def evaluate(self) -> dict[str, Any]:
        """Validation metrics for the summary (called on every rank; may use collectives)."""

    def split(self, cuts: Sequence[str]) -> Split:
        """The built model cut after each of ``cuts`` (names from ``cut_points``, in order) into
        ``len(cuts) + 1`` stages; only workloads with ``cut_points`` implement it."""
        raise NotImplementedError(f"{self.name} cannot be split: {self.cut_refusal}")
