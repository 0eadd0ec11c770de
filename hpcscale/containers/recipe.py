"""Container recipes per site, generated with hpccm from the site descriptor.

What the descriptor decides (the hybrid model: the host's launcher and MPI start the ranks, the
container's MPI must be ABI-compatible with the host's):

- architecture: ``node.arch`` (ppc64le for SummitDev);
- base image: CUDA + cuDNN on GPU sites, Intel oneAPI (MKL, compilers) on CPU sites, Debian
  bookworm on this machine (``detect: true`` without GPUs: `local`, `local-slurm`);
- MPI: ``launcher.mpi`` when set, else the launcher's (``hpcscale.launchers``, ``image_mpi``):
  jsrun → OpenMPI (Spectrum MPI is OpenMPI based), ibrun → Intel MPI, srun/aprun on a Cray
  (network "Cray ...") → MPICH (ABI-compatible with Cray MPICH), other srun/mpirun → OpenMPI
  with UCX; OFED for InfiniBand networks; none on this machine (Gloo);
- torch (pip on x86_64: CUDA 11.8 builds on GPU sites, CPU builds elsewhere; conda-forge on
  ppc64le, where PyPI has no wheels), blosc, h5py, and Horovod 0.28.1 built by the project's one
  build script, ``scripts/build-horovod.sh``, with the flags it takes everywhere: ``--cuda-cc``
  from the site's GPUs (``node.gpus.cuda_cc``, or the model's), ``--mpi`` where the image has MPI;
- hpcscale itself.

Every recipe builds in the context ``hpcscale container build`` assembles: ``src/`` (the
hpcscale source) and, for this machine's recipe, ``build/`` (the CPU torch wheel the host
installed, the host's Horovod wheel cache, pinned requirements and the host's CA bundle, so that
pip reaches PyPI through this machine's proxy and nothing multi-GB is downloaded).

hpccm keeps its output format and architecture in module-level configuration; ``recipe`` sets
both on every call.
"""

from __future__ import annotations

from typing import Literal

from hpcscale import __version__
from hpcscale.containers.imagedata import CONTEXT_NAME, IMAGE_DATA
from hpcscale.errors import UserError
from hpcscale.launchers.registry import for_site
from hpcscale.sites.models import Site

Format = Literal["singularity", "docker"]
# CUDA 11.8 still builds for sm_35 (K20X) to sm_90. Ubuntu 22.04 has Python 3.10, which hpcscale
# needs; the ppc64le image stays on 20.04 (its Python comes from conda-forge).
CUDA_BASE = "nvcr.io/nvidia/cuda:11.8.0-cudnn8-devel-ubuntu22.04"
CUDA_BASE_PPC64LE = "nvcr.io/nvidia/cuda:11.8.0-cudnn8-devel-ubuntu20.04"
ONEAPI_BASE = "intel/oneapi-hpckit:2023.2.1-devel-ubuntu22.04"
# This machine's image: `hpcscale container build` puts a locally built Debian root file system
# in its place when no registry is reachable.
LOCAL_BASE = "debian:bookworm-slim"
LOCAL_PYTHON = "3.11"  # bookworm's python3: the torch and Horovod wheels are for it
TORCH_GPU = "torch==2.7.1 --index-url https://download.pytorch.org/whl/cu118"  # + NCCL (cu11)
TORCH_CPU = "torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
HOROVOD = "0.28.1"
HOROVOD_SCRIPT = "src/scripts/build-horovod.sh"  # in the build context
BUILD = "/var/tmp/hpcscale-build"  # the context's build/ inside the image, removed after use
VENV = "/opt/venv"
CONDA_PREFIX = "/usr/local/anaconda"  # hpccm's conda building block installs there
PY_PACKAGES = [
    "numpy",
    "blosc",
    "h5py",
    "pydantic>=2",
    "jinja2",
    "pyyaml",
    "typer",
    "rich",
    "submitit",
    "mlperf-logging",
]


def mpi_flavour(site: Site) -> str:
    if site.launcher.mpi is not None:
        return {"spectrum": "openmpi", "cray": "mpich"}.get(site.launcher.mpi, site.launcher.mpi)
    return for_site(site).image_mpi(site)


def recipe(site: Site, fmt: Format = "singularity", data: bool = False) -> str:
    """The container recipe for ``site`` as an Apptainer/Singularity definition or Dockerfile;
    ``data``: with the build context's data set copied in (``--data-placement image``)."""
    # hpccm: the [containers] extra, and slow to import; only a recipe needs it
    import hpccm
    import hpccm.config
    from hpccm import building_blocks as bb
    from hpccm import primitives as pr

    if site.node is None:
        raise ValueError("resolve the site (detect its node) before making its recipe")
    hpccm.config.set_container_format(fmt)
    if is_local(site):
        return _local_recipe(site, hpccm, bb, pr, data)
    gpus = site.node.gpus
    arch = site.node.arch
    cuda_cc = _cuda_cc(site)
    ppc = arch == "ppc64le"
    distro = "ubuntu20" if gpus is not None and ppc else "ubuntu22"
    base = (CUDA_BASE_PPC64LE if ppc else CUDA_BASE) if gpus is not None else ONEAPI_BASE
    cuda = site.container.cuda
    if gpus is not None and cuda is not None:  # the descriptor's CUDA: what its driver runs
        base = cuda_base(cuda, "ubuntu20.04" if ppc else "ubuntu22.04")
    stage = hpccm.Stage()
    stage += pr.baseimage(image=base, _arch=arch, _distro=distro)
    stage += _labels(pr, site)
    stage += bb.packages(
        ospackages=[
            "python3",
            "python3-dev",
            "python3-pip",
            "git",
            "cmake",
            "g++",
            "wget",
            "ca-certificates",
        ]
    )
    infiniband = "infiniband" in site.network.lower() or "edr" in site.network.lower()
    if infiniband:
        stage += bb.mlnx_ofed()
    stage += _mpi(bb, mpi_flavour(site), gpus is not None, infiniband)
    stage += _python_stack(bb, pr, arch, gpus is not None, torch_pip(site))
    if site.engine == "horovod":  # built only for the engine that uses it (a long build)
        stage += pr.copy(src=HOROVOD_SCRIPT, dest=f"{BUILD}/build-horovod.sh")
        # ppc64le has NCCL from conda-forge (PyPI has no nvidia-nccl wheels for it)
        # and its torch is conda's
        nccl = CONDA_PREFIX if ppc else None
        python = f"{CONDA_PREFIX}/bin/python" if ppc else "python3"
        stage += pr.shell(
            commands=[
                horovod_command(python, cuda_cc, mpi=True, nccl_home=nccl),
                f"rm -rf {BUILD}",
            ]
        )
    stage += pr.copy(src="src", dest="/opt/hpcscale")
    stage += pr.shell(commands=["python3 -m pip install --no-deps /opt/hpcscale"])
    if data:
        stage += _data(pr)
    stage += pr.environment(variables={"HPCSCALE_SITE": site.name, "PYTHONUNBUFFERED": "1"})
    stage += pr.runscript(commands=["python3 -m hpcscale.train"])
    return str(stage) + "\n"


def is_local(site: Site) -> bool:
    """This machine's CPU image (a Debian base, the host's own torch wheel): ``container.recipe:
    local`` (`local`, `local-slurm`)."""
    return site.container.recipe == "local"


def horovod_command(
    python: str, cuda_cc: str | None, mpi: bool, nccl_home: str | None = None
) -> str:
    """The one Horovod build, as every recipe runs it (the script's own cache under BUILD)."""
    flags = [f"--python {python}", f"--cache {BUILD}/wheels"]
    if cuda_cc:
        flags.append(f"--cuda-cc {cuda_cc}")
    if cuda_cc and nccl_home:
        flags.append(f"--nccl-home {nccl_home}")
    if mpi:
        flags.append("--mpi")
    return f"bash {BUILD}/build-horovod.sh {' '.join(flags)}"


def _cuda_cc(site: Site) -> str | None:
    gpus = site.node.gpus if site.node else None
    if gpus is None:
        return None
    if gpus.cuda_archs is None:
        raise UserError(
            f"site {site.name}: node.gpus.model {gpus.model!r} has no known CUDA compute "
            "capability; set node.gpus.cuda_cc (e.g. '70' for V100, '80' for A100)"
        )
    return gpus.cuda_archs


def _labels(pr, site: Site):  # type: ignore[no-untyped-def]
    return pr.label(
        metadata={
            "org.hpcscale.site": site.name,
            "org.hpcscale.arch": site.node.arch if site.node else "",
            "org.hpcscale.version": __version__,
            "org.hpcscale.descriptor-sha256": site.digest(),
        }
    )


def _data(pr):  # type: ignore[no-untyped-def]
    """The data set, after hpcscale's layers: another data set rebuilds only this one."""
    return pr.copy(src=CONTEXT_NAME, dest=IMAGE_DATA)


def _local_recipe(site: Site, hpccm, bb, pr, data: bool) -> str:  # type: ignore[no-untyped-def]
    """Debian bookworm, a venv with the host's CPU torch wheel and pinned requirements, Horovod
    (CPU/Gloo) from the same script and its cached wheel, hpcscale; no MPI (srun starts the
    ranks, Gloo connects them)."""
    pip = f"PIP_CERT={BUILD}/ca.crt {VENV}/bin/python -m pip"
    stage = hpccm.Stage()
    stage += pr.baseimage(image=LOCAL_BASE, _arch=site.node.arch, _distro="ubuntu22")
    stage += bb.packages(ospackages=["ca-certificates", "python3", "python3-venv"])
    stage += pr.copy(src="build", dest=BUILD)
    stage += pr.copy(src=HOROVOD_SCRIPT, dest=f"{BUILD}/build-horovod.sh")
    stage += pr.shell(
        commands=[
            f"python3 -m venv {VENV}",
            f"{pip} install --no-cache-dir {BUILD}/wheels/torch-*.whl -r {BUILD}/requirements.txt",
            f"PIP_CERT={BUILD}/ca.crt {horovod_command(f'{VENV}/bin/python', None, mpi=False)}",
            f"rm -rf {BUILD}",
        ]
    )
    stage += pr.copy(src="src", dest="/opt/hpcscale")
    stage += pr.shell(
        commands=[f"{VENV}/bin/python -m pip install --no-deps --no-build-isolation /opt/hpcscale"]
    )
    if data:
        stage += _data(pr)
    stage += _labels(pr, site)  # last: a descriptor change rebuilds only what follows
    stage += pr.environment(
        variables={
            "PATH": f"{VENV}/bin:$PATH",
            "HPCSCALE_SITE": site.name,
            "PYTHONUNBUFFERED": "1",
        }
    )
    stage += pr.runscript(commands=["python3 -m hpcscale.train"])
    return str(stage) + "\n"


def _mpi(bb, flavour: str, gpu: bool, infiniband: bool):  # type: ignore[no-untyped-def]
    if flavour == "intel":
        return bb.intel_mpi(eula=True)
    if flavour == "mpich":
        return bb.mpich(version="3.4.3")
    return [
        bb.ucx(cuda=gpu, ofed=infiniband),
        bb.openmpi(version="4.1.6", cuda=gpu, infiniband=infiniband, ucx="/usr/local/ucx"),
    ]


def cuda_base(cuda: str, distro: str) -> str:
    """NVIDIA's CUDA + cuDNN development image of release ``cuda`` (11.x tags name cuDNN 8)."""
    cudnn = "cudnn8" if cuda.startswith("11.") else "cudnn"
    return f"nvcr.io/nvidia/cuda:{cuda}-{cudnn}-devel-{distro}"


def torch_pip(site: Site) -> str:
    """What pip installs for torch: the descriptor's release (for its CUDA's wheels on a GPU
    site), else the defaults."""
    gpu = site.node is not None and site.node.gpus is not None
    c = site.container
    if c.torch is None and (c.cuda is None or not gpu):
        return TORCH_GPU if gpu else TORCH_CPU
    version = c.torch or TORCH_GPU.split("==")[1].split()[0]
    if not gpu:
        return f"torch=={version} --index-url https://download.pytorch.org/whl/cpu"
    major, minor = (c.cuda or "11.8.0").split(".")[:2]
    return f"torch=={version} --index-url https://download.pytorch.org/whl/cu{major}{minor}"


def _python_stack(bb, pr, arch: str, gpu: bool, torch: str):  # type: ignore[no-untyped-def]
    parts = []
    if arch == "ppc64le":  # PyPI has no torch wheels for ppc64le: conda-forge has
        parts.append(
            bb.conda(
                eula=True,
                channels=["conda-forge"],
                packages=["python=3.10", "pytorch", "nccl" if gpu else "numpy"],
            )
        )
    else:
        parts.append(pr.shell(commands=[f"python3 -m pip install --no-cache-dir {torch}"]))
    parts.append(bb.pip(pip="pip3", packages=PY_PACKAGES))
    return parts
