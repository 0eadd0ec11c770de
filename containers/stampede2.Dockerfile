FROM intel/oneapi-hpckit:2023.2.1-devel-ubuntu22.04

LABEL org.hpcscale.arch=x86_64 \
    org.hpcscale.descriptor-sha256=2293445e4355ca1689185f9eda439bab1dcf1e5a8ca5a5ec55739129eb405249 \
    org.hpcscale.site=stampede2 \
    org.hpcscale.version=0.1.0

RUN apt-get update -y && \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        ca-certificates \
        cmake \
        g++ \
        git \
        python3 \
        python3-dev \
        python3-pip \
        wget && \
    rm -rf /var/lib/apt/lists/*

# Intel MPI version 2019.6-088
RUN apt-get update -y && \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        apt-transport-https \
        ca-certificates \
        gnupg \
        man-db \
        openssh-client \
        wget && \
    rm -rf /var/lib/apt/lists/*
RUN wget -qO - https://apt.repos.intel.com/intel-gpg-keys/GPG-PUB-KEY-INTEL-SW-PRODUCTS-2019.PUB | apt-key add - && \
    echo "deb https://apt.repos.intel.com/mpi all main" >> /etc/apt/sources.list.d/hpccm.list && \
    apt-get update -y && \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        intel-mpi-2019.6-088 && \
    rm -rf /var/lib/apt/lists/*
RUN echo "source /opt/intel/compilers_and_libraries/linux/mpi/intel64/bin/mpivars.sh intel64" >> /etc/bash.bashrc

RUN python3 -m pip install --no-cache-dir torch

# pip
RUN apt-get update -y && \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3-pip \
        python3-setuptools \
        python3-wheel && \
    rm -rf /var/lib/apt/lists/*
RUN pip3 --no-cache-dir install numpy blosc h5py 'pydantic>=2' jinja2 pyyaml typer rich submitit mlperf-logging

RUN python3 -m pip download --no-deps --no-binary=:all: -d /var/tmp horovod==0.28.1 && \
    tar -xzf /var/tmp/horovod-0.28.1.tar.gz -C /var/tmp && \
    sed -i 's/CMAKE_CXX_STANDARD 14/CMAKE_CXX_STANDARD 17/' /var/tmp/horovod-0.28.1/CMakeLists.txt /var/tmp/horovod-0.28.1/horovod/torch/CMakeLists.txt && \
    CMAKE_POLICY_VERSION_MINIMUM=3.5 HOROVOD_CPU_OPERATIONS=MPI HOROVOD_WITH_PYTORCH=1 HOROVOD_WITH_MPI=1 HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_MXNET=1 python3 -m pip install --no-build-isolation --no-cache-dir /var/tmp/horovod-0.28.1 && \
    rm -rf /var/tmp/horovod-0.28.1 /var/tmp/horovod-0.28.1.tar.gz

COPY . /opt/hpcscale

RUN python3 -m pip install --no-deps /opt/hpcscale

ENV HPCSCALE_SITE=stampede2 \
    PYTHONUNBUFFERED=1

ENTRYPOINT ["python3", "-m", "hpcscale.train"]
