#!/usr/bin/env bash
# Build (or reuse) a Horovod 0.28.1 wheel for the torch installed in this Python, and install it.
#
#   bash scripts/build-horovod.sh                      # CPU: Gloo only (no CUDA here)
#   bash scripts/build-horovod.sh --cuda-cc 90         # GPU: NCCL operations, Hopper
#   bash scripts/build-horovod.sh --sdist horovod-0.28.1.tar.gz   # offline, from a download
#   bash scripts/build-horovod.sh --mpi ...            # also MPI operations (mpicxx on PATH)
#   bash scripts/build-horovod.sh --cuda-cc 60 --nccl-home DIR   # NCCL from DIR (conda), not pip
#
# Horovod 0.28.1 (June 2023) is the last release and does not build on today's toolchains as
# published; the sdist is patched here:
#   - CMAKE_CXX_STANDARD 14 -> 17 (torch >= 2.1 needs C++17; the change is only on Horovod's
#     master branch);
#   - GCC 13 no longer includes <string> and <stdexcept> transitively: they are force-included;
#   - CMake >= 3.18 refuses an empty CUDA architecture list: --cuda-cc gives it (P100 60,
#     V100 70, K20X 35, A100 80, H100/H200 90; the site's GPUs decide);
#   - NCCL from the `nvidia-nccl-cu*` pip package, linked shared (a system libnccl_static.a is
#     otherwise picked); that package ships only libnccl.so.2, so a scratch folder gets the
#     libnccl.so link the linker looks for.
# The wheel is cached by variant (cpu, or cuda-<cc>, each with -mpi for --mpi) in --cache
# (default $HPCSCALE_CI_CACHE or ~/.cache/hpcscale-ci) and reused when its Python tag is this
# Python's; `--no-install` only builds it. The container recipes run this same script
# (`hpcscale container render`), with the site's CUDA architectures.
set -euo pipefail

VERSION=0.28.1
cuda_cc=""
sdist=""
nccl_home=""
cache="${HPCSCALE_CI_CACHE:-${HOME:-/tmp}/.cache/hpcscale-ci}"
install=1
mpi=0
python=python3

usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --cuda-cc) cuda_cc="${2:?--cuda-cc needs a list, e.g. 90 or 70,80}"; shift 2 ;;
    --sdist) sdist="${2:?--sdist needs a path}"; shift 2 ;;
    --cache) cache="${2:?--cache needs a folder}"; shift 2 ;;
    --python) python="${2:?--python needs an interpreter}"; shift 2 ;;
    --no-install) install=0; shift ;;
    --mpi) mpi=1; shift ;;
    --nccl-home) nccl_home="${2:?--nccl-home needs a folder with lib/libnccl.so.2}"; shift 2 ;;
    -h|--help) usage ;;
    *) echo "error: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ -n "$cuda_cc" ] && ! [[ "$cuda_cc" =~ ^[0-9]+(,[0-9]+)*$ ]]; then
  echo "error: --cuda-cc '$cuda_cc': give compute capabilities like 90 or 70,80" >&2
  exit 2
fi

variant=cpu
[ -n "$cuda_cc" ] && variant="cuda-${cuda_cc//,/-}"
[ "$mpi" = 1 ] && variant="$variant-mpi"
# The CPU wheel keeps the name it has always had in the cache (CI's cache stays valid).
folder="$cache"
[ "$variant" != cpu ] && folder="$cache/horovod-$variant"
mkdir -p "$folder"
# A wheel for this Python only (cp311, ...): the cache may be shared with an image's build.
pytag=$("$python" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
pattern="$folder/horovod-$VERSION-$pytag-*.whl"

if ! compgen -G "$pattern" >/dev/null; then
  if [ -n "$cuda_cc" ]; then
    nccl="$nccl_home"
    [ -n "$nccl" ] ||
      nccl=$("$python" -c 'import nvidia.nccl as n; print(list(n.__path__)[0])' 2>/dev/null || true)
    if [ -z "$nccl" ] || [ ! -e "$nccl/lib/libnccl.so.2" ]; then
      echo "error: --cuda-cc needs NCCL: pip install the nvidia-nccl-cu* package that matches" \
        "torch's CUDA (python -c 'import torch; print(torch.version.cuda)')" >&2
      exit 2
    fi
  fi
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  if [ -z "$sdist" ]; then
    "$python" -m pip download -q --no-deps --no-binary=:all: "horovod==$VERSION" -d "$work"
    sdist="$work/horovod-$VERSION.tar.gz"
  fi
  tar -xzf "$sdist" -C "$work"
  src="$work/horovod-$VERSION"
  sed -i 's/CMAKE_CXX_STANDARD 14/CMAKE_CXX_STANDARD 17/' \
    "$src/CMakeLists.txt" "$src/horovod/torch/CMakeLists.txt"
  command -v cmake >/dev/null || "$python" -m pip install -q cmake
  export CMAKE_POLICY_VERSION_MINIMUM=3.5 HOROVOD_WITH_PYTORCH=1 HOROVOD_WITH_GLOO=1 \
    HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_MXNET=1
  if [ "$mpi" = 1 ]; then export HOROVOD_WITH_MPI=1; else export HOROVOD_WITHOUT_MPI=1; fi
  export CXXFLAGS="${CXXFLAGS:-} -include string -include stdexcept"
  if [ -n "$cuda_cc" ]; then
    mkdir -p "$work/nccl/lib"
    ln -s "$nccl/include" "$work/nccl/include"
    ln -s "$nccl/lib/libnccl.so.2" "$work/nccl/lib/libnccl.so"
    ln -s "$nccl/lib/libnccl.so.2" "$work/nccl/lib/libnccl.so.2"
    export HOROVOD_GPU_OPERATIONS=NCCL HOROVOD_NCCL_HOME="$work/nccl" HOROVOD_NCCL_LINK=SHARED \
      HOROVOD_BUILD_CUDA_CC_LIST="$cuda_cc"
  fi
  echo "building Horovod $VERSION ($variant) into $folder" >&2
  "$python" -m pip wheel -q --no-build-isolation --no-deps -w "$folder" "$src"
fi
wheel=$(compgen -G "$pattern" | head -1)
if [ "$install" = 1 ]; then
  "$python" -m pip install -q "$wheel"
fi
echo "$wheel"
