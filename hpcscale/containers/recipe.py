"""Container recipes per site, generated with hpccm from the site descriptor.

What the descriptor decides (the hybrid model: the host's launcher and MPI start the ranks, the
container's MPI must be ABI-compatible with the host's):

- architecture: ``node.arch`` (ppc64le for SummitDev);
- base image: CUDA + cuDNN on GPU sites, Intel oneAPI (MKL, compilers) on CPU sites;
- MPI: ``launcher.mpi`` when set, else by launcher: jsrun → OpenMPI (Spectrum MPI is OpenMPI
  based), ibrun → Intel MPI, srun/aprun on a Cray (network "Cray ...") → MPICH (ABI-compatible
  with Cray MPICH), other srun/mpirun → OpenMPI with UCX; OFED for InfiniBand networks;
- torch (pip on x86_64; conda-forge on ppc64le, where PyPI has no wheels), blosc, h5py, Horovod
  0.28.1 built with NCCL on GPU sites (its CMake C++ standard raised to 17 for torch ≥ 2.1),
  and hpcscale itself from the build context.

hpccm keeps its output format and architecture in module-level configuration; ``recipe`` sets
both on every call.
"""

from __future__ import annotations

from typing import Literal

from hpcscale import __version__
from hpcscale.sites.models import Site

Format = Literal["singularity", "docker"]
CUDA_BASE = "nvcr.io/nvidia/cuda:11.8.0-cudnn8-devel-ubuntu20.04"  # multi-arch, sm_35–sm_90
ONEAPI_BASE = "intel/oneapi-hpckit:2023.2.1-devel-ubuntu22.04"
HOROVOD = "0.28.1"
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
    kind = site.launcher.kind
    if kind == "jsrun":
        return "openmpi"
    if kind == "ibrun":
        return "intel"
    if kind in ("srun", "aprun") and site.network.lower().startswith("cray"):
        return "mpich"
    return "openmpi"


def recipe(site: Site, fmt: Format = "singularity") -> str:
    """The container recipe for ``site`` as an Apptainer/Singularity definition or Dockerfile."""
    import hpccm
    import hpccm.config
    from hpccm import building_blocks as bb
    from hpccm import primitives as pr

    if site.node is None:
        raise ValueError("resolve the site (detect its node) before making its recipe")
    hpccm.config.set_container_format(fmt)
    gpu = site.node.gpus is not None
    arch = site.node.arch
    distro = "ubuntu20" if gpu else "ubuntu22"
    stage = hpccm.Stage()
    stage += pr.baseimage(image=CUDA_BASE if gpu else ONEAPI_BASE, _arch=arch, _distro=distro)
    stage += pr.label(
        metadata={
            "org.hpcscale.site": site.name,
            "org.hpcscale.arch": arch,
            "org.hpcscale.version": __version__,
            "org.hpcscale.descriptor-sha256": site.digest(),
        }
    )
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
    stage += _mpi(bb, mpi_flavour(site), gpu, infiniband)
    stage += _python_stack(bb, pr, arch, gpu)
    stage += pr.copy(src=".", dest="/opt/hpcscale")
    stage += pr.shell(commands=["python3 -m pip install --no-deps /opt/hpcscale"])
    stage += pr.environment(variables={"HPCSCALE_SITE": site.name, "PYTHONUNBUFFERED": "1"})
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


def _python_stack(bb, pr, arch: str, gpu: bool):  # type: ignore[no-untyped-def]
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
        parts.append(pr.shell(commands=["python3 -m pip install --no-cache-dir torch"]))
    parts.append(bb.pip(pip="pip3", packages=PY_PACKAGES))
    ops = "HOROVOD_GPU_OPERATIONS=NCCL" if gpu else "HOROVOD_CPU_OPERATIONS=MPI"
    src = f"/var/tmp/horovod-{HOROVOD}"
    parts.append(
        pr.shell(
            commands=[
                # Horovod 0.28.1 asks for C++14; torch >= 2.1 headers need C++17.
                f"python3 -m pip download --no-deps --no-binary=:all: -d /var/tmp "
                f"horovod=={HOROVOD}",
                f"tar -xzf {src}.tar.gz -C /var/tmp",
                f"sed -i 's/CMAKE_CXX_STANDARD 14/CMAKE_CXX_STANDARD 17/' {src}/CMakeLists.txt "
                f"{src}/horovod/torch/CMakeLists.txt",
                f"CMAKE_POLICY_VERSION_MINIMUM=3.5 {ops} HOROVOD_WITH_PYTORCH=1 HOROVOD_WITH_MPI=1 "
                "HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_MXNET=1 "
                f"python3 -m pip install --no-build-isolation --no-cache-dir {src}",
                f"rm -rf {src} {src}.tar.gz",
            ]
        )
    )
    return parts
