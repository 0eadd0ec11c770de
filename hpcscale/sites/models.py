"""Typed site descriptors.

A site has three independent axes (ReFrame's partition model): the scheduler that allocates nodes,
the launcher that starts ranks on them, and the container runtime that wraps each rank. Around
them: the node hardware, limits, modules, environment and data staging.

Every model is strict (``extra="forbid"``): a misspelt field is an error, not a silent default.
Values that end up in scheduler directives are validated against a token pattern; everything else
is shell-quoted when rendered (see ``hpcscale.render``).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

# The names of each axis's registry (a test keeps them equal); what a scheduler, launcher or
# runtime cannot honour in a valid descriptor is asked of them by the loader
# (``hpcscale.sites.refusals``), not here: these models import no backend.
SchedulerKind = Literal["slurm", "lsf", "pbs", "local"]
LauncherKind = Literal[
    "srun", "jsrun", "mpirun", "ibrun", "aprun", "torchrun", "local", "horovodrun"
]
RuntimeKind = Literal["apptainer", "singularity", "shifter", "sarus", "charliecloud", "none"]
EngineKind = Literal["torch", "horovod", "master-worker"]
Arch = Literal["x86_64", "ppc64le", "aarch64"]
GpuLink = Literal["nvlink", "pcie"]

# A value written into a scheduler directive (#SBATCH/#BSUB/#PBS): one token, no whitespace,
# no shell metacharacters. Partition, queue, account, QoS and constraint names all fit.
DIRECTIVE_TOKEN = r"^[A-Za-z0-9_.,:=+@%/\-\[\]&|!()*]+$"
Token = Annotated[str, StringConstraints(pattern=DIRECTIVE_TOKEN, max_length=256)]
CudaVersion = Annotated[str, StringConstraints(pattern=r"^1[0-9]\.[0-9]\.[0-9]$")]
TorchVersion = Annotated[str, StringConstraints(pattern=r"^2\.[0-9]{1,2}\.[0-9]{1,2}$")]
# An extra directive line: anything printable on one line (the scheduler parses it, bash ignores
# the comment); a newline would end the comment and start a command, so it is refused.
DirectiveLine = Annotated[str, StringConstraints(pattern=r"^[^\x00-\x1f\x7f]+$", max_length=512)]
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
SiteName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=64)]
# A setup line is shell the site's admin would type: one line (no newline or NUL), as written.
SetupLine = Annotated[str, StringConstraints(pattern=r"^[^\n\r\x00]{1,1000}$")]
# An interpreter path: plain characters only (it is quoted into the rank's command).
Python = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_./+~-]{1,300}$")]
Walltime = Annotated[str, AfterValidator(lambda v: _check_walltime(v))]
PositiveInt = Annotated[int, Field(gt=0)]
CudaCc = Annotated[str, StringConstraints(pattern=r"^[0-9]{2,3}(,[0-9]{2,3})*$")]
# Compute capability by GPU model (a substring of node.gpus.model): Horovod's CUDA build needs it.
CUDA_CC = {"K20X": "35", "K80": "37", "P100": "60", "V100": "70", "A100": "80", "H100": "90",
           "H200": "90", "L40": "89", "A40": "86"}  # fmt: skip


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Scheduler(Strict):
    """Who allocates the nodes, and what a job asks it for.

    The request fields are scheduler-neutral; each backend (``hpcscale.schedulers``) writes them in
    its own words or, when its scheduler cannot express one, refuses the descriptor at validation.
    """

    kind: SchedulerKind = Field(description="the batch system: slurm, lsf, pbs or local")
    partition: Token | None = Field(None, description="Slurm partition, LSF or PBS queue")
    account: Token | None = Field(None, description="project/allocation to charge")
    constraint: Token | None = Field(
        None, description="node features, e.g. gpu on Piz Daint; a&b (all of) or a|b (any of)"
    )
    qos: Token | None = Field(None, description="quality of service (Slurm, Torque/Moab)")
    reservation: Token | None = Field(None, description="run inside this advance reservation")
    nodelist: list[Token] = Field(default_factory=list, description="hosts the job must use")
    exclude: list[Token] = Field(default_factory=list, description="hosts the job must avoid")
    exclusive: bool = Field(True, description="the site allocates whole nodes")
    request_gpus: bool = Field(True, description="ask for the GPUs explicitly")
    gpu_request: Literal["gres", "gpus-per-node"] = Field(
        "gres", description="Slurm's way to ask: --gres=gpu:N or --gpus-per-node=N"
    )
    cpus_per_task: PositiveInt | None = Field(
        None, description="CPUs per rank; default: the node's cores shared by its ranks"
    )
    threads_per_core: PositiveInt | None = Field(
        None, description="hardware threads used per core (1: no SMT); default: the site's"
    )
    memory_gb: float | None = Field(None, gt=0, description="memory per node to ask for")
    pbs_flavor: Literal["torque", "pbspro"] = Field(
        "pbspro", description="kind pbs: PBS Pro (select chunks) or Torque/Moab (nodes=N:ppn=M)"
    )
    directives: list[DirectiveLine] = Field(
        default_factory=list,
        description="extra directive lines; one starting with # is written verbatim (#DW ...)",
    )

    @property
    def backend(self) -> str:
        """The registry name of this scheduler's backend (pbs splits into pbs and torque)."""
        return "torque" if self.kind == "pbs" and self.pbs_flavor == "torque" else self.kind


class Launcher(Strict):
    """What starts the ranks on the allocated nodes."""

    kind: LauncherKind = Field(
        description="what starts the ranks: srun, jsrun, mpirun, aprun, ibrun, torchrun, "
        "horovodrun or local"
    )
    options: list[str] = Field(default_factory=list, description="extra launcher arguments")
    mpi: Literal["openmpi", "intel", "mpich", "spectrum", "cray"] | None = Field(
        None, description="MPI flavour, for mpirun's per-node option"
    )


class Container(Strict):
    """The runtime that wraps every rank (the launcher stays outside)."""

    runtime: RuntimeKind = Field(
        "none", description="container runtime: apptainer, singularity, charliecloud, shifter, "
        "sarus, or none"
    )  # fmt: skip
    enabled: bool = Field(False, description="wrap ranks in the container (--container)")
    image: str | None = Field(None, description="image path or reference")
    binds: list[str] = Field(default_factory=list, description="host paths bound inside")
    options: list[str] = Field(default_factory=list, description="extra runtime arguments")
    cuda: CudaVersion | None = Field(
        None,
        description="cluster recipe on GPU sites: the image's CUDA, e.g. '12.4.1' (the version "
        "the site's driver supports); default 11.8.0",
    )
    torch: TorchVersion | None = Field(
        None,
        description="cluster recipe: the torch release to install, e.g. '2.5.1' (a wheel built "
        "for the CUDA above); default 2.7.1 (GPU), 2.13.0 (CPU)",
    )
    recipe: Literal["cluster", "local"] = Field(
        "cluster",
        description="cluster: the site's CUDA or oneAPI base with its MPI; local: Debian "
        "bookworm with this machine's CPU torch wheel, no MPI (hpcscale container build here)",
    )

    @model_validator(mode="after")
    def _image_when_enabled(self) -> Container:
        if self.runtime != "none" and not self.image:
            raise ValueError(f"container.runtime {self.runtime!r} needs container.image")
        if self.enabled and self.runtime == "none":
            raise ValueError("container.enabled needs a container.runtime other than none")
        return self


class Gpus(Strict):
    """A node's GPUs."""

    model: str = Field(description="GPU model as the vendor names it, e.g. NVIDIA A100-SXM4-40GB")
    count: PositiveInt = Field(description="GPUs per node")
    memory_gb: float = Field(gt=0, description="memory per GPU, GB")
    link: GpuLink = Field(description="how the GPUs of a node talk: nvlink or pcie")
    cuda_cc: CudaCc | None = Field(
        None,
        description="CUDA compute capabilities to build for, e.g. '60' or '70,80'; default: "
        "from the model (K20X 35, P100 60, V100 70, A100 80, H100/H200 90)",
    )

    @property
    def cuda_archs(self) -> str | None:
        """``cuda_cc``, else the compute capability of a known model (None if unknown)."""
        if self.cuda_cc:
            return self.cuda_cc
        name = self.model.upper()
        return next((cc for key, cc in CUDA_CC.items() if key in name), None)


class Node(Strict):
    """One compute node's hardware (all nodes of a site alike)."""

    cpu: str = Field(description="CPU model")
    arch: Arch = Field(description="CPU architecture: x86_64, ppc64le or aarch64")
    sockets: PositiveInt = Field(description="CPU sockets per node")
    cores_per_socket: PositiveInt = Field(description="physical cores per socket")
    threads_per_core: PositiveInt = Field(1, description="hardware threads per core (SMT)")
    memory_gb: float = Field(gt=0, description="memory per node, GB")
    gpus: Gpus | None = Field(None, description="the node's GPUs; omit on CPU nodes")

    @property
    def cores(self) -> int:
        return self.sockets * self.cores_per_socket


class Limits(Strict):
    """What one job may ask for."""

    max_nodes: PositiveInt = Field(description="nodes one job may have")
    max_walltime: Walltime = Field(
        description="longest walltime, quoted HH:MM[:SS] or D-HH:MM (YAML reads 12:00:00 "
        "unquoted as a number)"
    )
    default_walltime: Walltime | None = Field(
        None, description="walltime of a job that gives none (default: max_walltime)"
    )
    requeues: int = Field(
        3, ge=0, le=100, description="times a job that reaches its walltime is requeued from "
        "its checkpoint (then it stops at the limit)"
    )  # fmt: skip


class TrainingDefaults(Strict):
    """The default study on this site: what to train, its data set and its settings. They apply
    to ``model`` and to any model trained on the same kind of data (``--model scnet`` on a
    jishnet site); a model on other data (``--model 3dgan`` on a GPU site) brings its own."""

    model: str = Field("jishnet", description="what to train: a model of hpcscale.workloads")
    resolution: int = Field(
        3600, ge=275, description="image side of LArTPC events; the paper's is 3600"
    )
    events: PositiveInt = Field(15000, description="training + validation events to generate")
    batch: PositiveInt = Field(7, description="minibatch per rank; 7 fits a 16 GB P100")
    epochs: float = Field(10.0, gt=0, description="epochs a job trains (--epochs)")
    target_loss: float = Field(1.2, gt=0, description="TTL target (the paper's 1.2 by default)")
    options: list[str] = Field(
        default_factory=list,
        description="more options of the model for every rank, e.g. [--inter-threads, '2']",
    )


class Link(Strict):
    """One class of link a rank's allreduce crosses, for the α–β model of ``hpcscale predict``."""

    bandwidth_gbs: float = Field(gt=0, description="GB/s one rank gets per direction")
    latency_us: float = Field(ge=0, description="µs per message (α), software included")


# A performance reference in ReFrame's style: [value, lower, upper], tolerances as fractions of
# the value (-0.1: 10 % below; None: unbounded), for ``hpcscale check``.
Reference = tuple[float, float | None, float | None]
CheckedFigure = Literal["ttl_s", "dlt_s", "steady_step_s", "epoch_rate_per_min", "samples_per_s"]


class Performance(Strict):
    """Published figures of the hardware, for ``hpcscale predict`` (each optional; cite the
    source in a YAML comment). They describe the machine, not how a job runs: the descriptor's
    digest leaves them out."""

    gpu_fp32_tflops: float | None = Field(None, gt=0, description="peak FP32 TFLOP/s per GPU")
    gpu_fp16_tflops: float | None = Field(
        None, gt=0, description="peak dense FP16/BF16 TFLOP/s per GPU (tensor cores)"
    )
    cpu_fp32_tflops: float | None = Field(
        None, gt=0, description="peak FP32 TFLOP/s per node's CPUs (CPU sites)"
    )
    intra_node: Link | None = Field(None, description="GPU-GPU (or rank-rank) within a node")
    inter_node: Link | None = Field(None, description="between nodes: the interconnect")
    fs_bandwidth_gbs: float | None = Field(
        None, gt=0, description="aggregate read GB/s of the file system holding data_dir"
    )
    references: dict[str, dict[PositiveInt, dict[CheckedFigure, Reference]]] = Field(
        default_factory=dict,
        description="hpcscale check's references: model → size → figure → [value, lower, upper]",
    )


class Site(Strict):
    """One HPC site (or this machine, ``local``)."""

    name: SiteName = Field(description="the site's name: its file's name without .yaml")
    description: str = Field("", description="one line for `hpcscale sites`")
    scheduler: Scheduler = Field(description="the batch system and what a job asks it for")
    launcher: Launcher = Field(description="what starts the ranks on the allocated nodes")
    container: Container = Field(Container(), description="the runtime that wraps every rank")
    engine: EngineKind = Field(
        "torch", description="gradient averaging: torch (DDP-style allreduce) or horovod"
    )
    node: Node | None = Field(None, description="omit with detect: true")
    detect: bool = Field(False, description="fill node from this machine when a job is planned")
    network: str = Field("", description="the interconnect, for the record (e.g. Aries)")
    limits: Limits = Field(description="what one job may ask for")
    modules: list[str] = Field(
        default_factory=list, description="environment modules every job loads (module load)"
    )
    setup: list[SetupLine] = Field(
        default_factory=list,
        description="shell lines every job script runs before the ranks, after modules and env, "
        "as written (the site's own commands): e.g. module purge, source /path/venv/bin/activate, "
        "conda activate env",
    )
    python: Python | None = Field(
        None,
        description="the compute nodes' Python that runs the ranks (outside a container), e.g. "
        "/path/venv/bin/python; default: the interpreter that submits",
    )
    env: dict[EnvName, str] = Field(
        default_factory=dict, description="variables every job exports (values quoted)"
    )
    workers_per_node: PositiveInt | None = Field(
        None, description="ranks per node; default one per GPU (one per node on CPU sites)"
    )
    data_dir: str = Field("hpcscale-data", description="where events are staged")
    training: TrainingDefaults = Field(
        TrainingDefaults(), description="the site's default study; a study's flags override it"
    )
    performance: Performance = Field(
        Performance(),
        description="published figures of the machine (peaks, links, file system) "
        "that `hpcscale predict` and `check` use; left out of the descriptor digest",
    )

    @model_validator(mode="after")
    def _node_or_detect(self) -> Site:
        if self.node is None and not self.detect:
            raise ValueError("node is required unless detect is true")
        if self.node is not None and self.detect:
            raise ValueError("give either node or detect: true, not both")
        return self

    @model_validator(mode="after")
    def _workers_share_gpus_evenly(self) -> Site:
        gpus = self.node.gpus.count if self.node and self.node.gpus else 0
        workers = self.workers_per_node
        if gpus and workers and workers % gpus and gpus % workers:
            raise ValueError(
                f"workers_per_node {workers} on nodes of {gpus} GPUs (node.gpus.count): each "
                f"rank needs the same GPUs, so use a divisor of {gpus} (ranks with several GPUs "
                f"each) or a multiple of it (ranks sharing a GPU)"
            )
        return self

    def digest(self) -> str:
        """sha256 of the canonical descriptor (provenance in manifests and summaries)."""
        # Defaults left out: a new optional field does not change the digest of existing sites.
        # Performance figures describe the machine for predictions, not how a job runs.
        dump = self.model_dump(mode="json", exclude_defaults=True, exclude={"performance"})
        blob = json.dumps(dump, sort_keys=True)
        blob = blob.encode()
        return hashlib.sha256(blob).hexdigest()


def _check_walltime(value: str) -> str:
    walltime_seconds(value)
    return value


def walltime_seconds(value: str) -> int:
    """Parse ``[D-]HH:MM[:SS]`` into seconds."""
    m = re.fullmatch(r"(?:(\d+)-)?(\d{1,3}):(\d{2})(?::(\d{2}))?", value)
    if not m:
        raise ValueError(f"walltime {value!r} is not HH:MM, HH:MM:SS or D-HH:MM:SS")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in m.groups())
    if minutes >= 60 or seconds >= 60:
        raise ValueError(f"walltime {value!r}: minutes and seconds must be below 60")
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def format_walltime(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    return f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"
