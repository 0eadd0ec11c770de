FROM nvcr.io/nvidia/cuda:11.8.0-cudnn8-devel-ubuntu22.04

LABEL org.hpcscale.arch=x86_64 \
    org.hpcscale.descriptor-sha256=2ac4f60d0533e56fdb4ab8f3a76650870949d6f27a92ade640f64634b1b6265e \
    org.hpcscale.site=pizdaint \
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

RUN python3 -m pip install --no-cache-dir torch==2.7.1 --index-url https://download.pytorch.org/whl/cu118

# pip
RUN apt-get update -y && \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3-pip \
        python3-setuptools \
        python3-wheel && \
    rm -rf /var/lib/apt/lists/*
RUN pip3 --no-cache-dir install numpy blosc h5py 'pydantic>=2' jinja2 pyyaml typer rich submitit mlperf-logging

COPY src/scripts/build-horovod.sh /var/tmp/hpcscale-build/build-horovod.sh

RUN bash /var/tmp/hpcscale-build/build-horovod.sh --python python3 --cache /var/tmp/hpcscale-build/wheels --cuda-cc 60 --mpi && \
    rm -rf /var/tmp/hpcscale-build

COPY src /opt/hpcscale

RUN python3 -m pip install --no-deps /opt/hpcscale

ENV HPCSCALE_SITE=pizdaint \
    PYTHONUNBUFFERED=1

ENTRYPOINT ["python3", "-m", "hpcscale.train"]
