FROM debian:bookworm-slim

RUN apt-get update -y && \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        ca-certificates \
        python3 \
        python3-venv && \
    rm -rf /var/lib/apt/lists/*

COPY build /var/tmp/hpcscale-build

COPY src/scripts/build-horovod.sh /var/tmp/hpcscale-build/build-horovod.sh

RUN python3 -m venv /opt/venv && \
    PIP_CERT=/var/tmp/hpcscale-build/ca.crt /opt/venv/bin/python -m pip install --no-cache-dir /var/tmp/hpcscale-build/wheels/torch-*.whl -r /var/tmp/hpcscale-build/requirements.txt && \
    PIP_CERT=/var/tmp/hpcscale-build/ca.crt bash /var/tmp/hpcscale-build/build-horovod.sh --python /opt/venv/bin/python --cache /var/tmp/hpcscale-build/wheels && \
    rm -rf /var/tmp/hpcscale-build

COPY src /opt/hpcscale

RUN /opt/venv/bin/python -m pip install --no-deps --no-build-isolation /opt/hpcscale

LABEL org.hpcscale.arch=x86_64 \
    org.hpcscale.descriptor-sha256=a3ee89c14726fb16238ca3b1158f3c7a8c4fa9bfab52d9322f104488a531a8dd \
    org.hpcscale.site=local-slurm \
    org.hpcscale.version=0.1.0

ENV HPCSCALE_SITE=local-slurm \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1

ENTRYPOINT ["python3", "-m", "hpcscale.train"]
