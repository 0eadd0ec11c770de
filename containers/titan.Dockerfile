FROM nvcr.io/nvidia/cuda:11.8.0-cudnn8-devel-ubuntu20.04

LABEL org.hpcscale.arch=x86_64 \
    org.hpcscale.descriptor-sha256=48eb2ad5e23c3c023d6afca5e2cf31b59a7dfccca804853296713134d9fb33a8 \
    org.hpcscale.site=titan \
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

# MPICH version 3.4.3
RUN apt-get update -y && \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        file \
        gzip \
        make \
        openssh-client \
        perl \
        tar \
        wget && \
    rm -rf /var/lib/apt/lists/*
RUN mkdir -p /var/tmp && wget -q -nc -P /var/tmp https://www.mpich.org/static/downloads/3.4.3/mpich-3.4.3.tar.gz && \
    mkdir -p /var/tmp && tar -x -f /var/tmp/mpich-3.4.3.tar.gz -C /var/tmp -z && \
    cd /var/tmp/mpich-3.4.3 &&   ./configure --prefix=/usr/local/mpich && \
    make -j$(nproc) && \
    make -j$(nproc) install && \
    rm -rf /var/tmp/mpich-3.4.3 /var/tmp/mpich-3.4.3.tar.gz
ENV LD_LIBRARY_PATH=/usr/local/mpich/lib:$LD_LIBRARY_PATH \
    PATH=/usr/local/mpich/bin:$PATH

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
    CMAKE_POLICY_VERSION_MINIMUM=3.5 HOROVOD_GPU_OPERATIONS=NCCL HOROVOD_WITH_PYTORCH=1 HOROVOD_WITH_MPI=1 HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_MXNET=1 python3 -m pip install --no-build-isolation --no-cache-dir /var/tmp/horovod-0.28.1 && \
    rm -rf /var/tmp/horovod-0.28.1 /var/tmp/horovod-0.28.1.tar.gz

COPY . /opt/hpcscale

RUN python3 -m pip install --no-deps /opt/hpcscale

ENV HPCSCALE_SITE=titan \
    PYTHONUNBUFFERED=1

ENTRYPOINT ["python3", "-m", "hpcscale.train"]
