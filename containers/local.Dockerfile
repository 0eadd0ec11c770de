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
    org.hpcscale.descriptor-sha256=029a079781b3d60687cc7d22105dd67e6812e11fcb49bf6f16c5a0398d48742a \
    org.hpcscale.site=local \
    org.hpcscale.version=0.1.0

ENV HPCSCALE_SITE=local \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1

ENTRYPOINT ["python3", "-m", "hpcscale.train"]
