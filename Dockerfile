# syntax=docker/dockerfile:1
#
# The iot-monitoring dataflow image: one Bytewax process per container.
#
# Two stages so that pip, wheel caches and the build backend never reach the
# image that runs: the first stage installs the package (from pyproject.toml)
# into a virtual environment, the second copies only that environment.
# The base is pinned to a patch release; bump it deliberately.
#
#   docker build -t iot-monitoring:dev .
#   docker run --rm -v $PWD/config/iot-monitoring.yaml:/etc/iot-monitoring/pipeline.yaml:ro \
#       -e KAFKA_BOOTSTRAP_SERVERS=... -e RABBITMQ_URL=... iot-monitoring:dev

FROM python:3.11.14-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# The native Kafka reader and JSON decoder are Rust (native/): cargo from the official
# Rust image; a C compiler, make and perl from Debian (librdkafka and the
# OpenSSL it uses for TLS and SCRAM are compiled from source, and OpenSSL's
# build is driven by perl). None of them reaches the runtime stage, which
# links nothing of the system's OpenSSL: it is inside the extension.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install --yes --no-install-recommends gcc libc6-dev make perl \
    && rm -rf /var/lib/apt/lists/*
COPY --from=rust:1.95.0-slim-bookworm /usr/local/cargo /usr/local/cargo
COPY --from=rust:1.95.0-slim-bookworm /usr/local/rustup /usr/local/rustup
ENV CARGO_HOME=/usr/local/cargo \
    RUSTUP_HOME=/usr/local/rustup

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:/usr/local/cargo/bin:$PATH

WORKDIR /src
COPY pyproject.toml README.md ./
COPY cli ./cli
COPY config ./config
COPY dataflows ./dataflows
COPY operators ./operators
COPY engine ./engine
COPY connectors ./connectors
COPY runtime ./runtime
COPY iot_native ./iot_native
COPY udf ./udf
COPY native ./native
RUN pip install --no-cache-dir . \
    && python -P -c "import iot_native._native" \
    && python -m pip uninstall --yes setuptools pip


FROM python:3.11.14-slim-bookworm AS runtime

LABEL org.opencontainers.image.title="iot-monitoring" \
      org.opencontainers.image.description="Real-time IoT error monitoring on Bytewax" \
      org.opencontainers.image.licenses="Apache-2.0"

# The base image's own installer is not needed at run time either.
RUN python -m pip uninstall --yes --no-cache-dir pip setuptools wheel \
    && groupadd --system --gid 65532 iot \
    && useradd --system --uid 65532 --gid iot --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin iot

COPY --from=build /opt/venv /opt/venv

# entrypoint.sh / entrypoint-recovery.sh are the two scripts the Bytewax Helm
# chart (and waxctl) run from the image's working directory.
WORKDIR /app
COPY k8s/image/entrypoint.sh k8s/image/entrypoint-recovery.sh ./

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    IOT_PIPELINE=/etc/iot-monitoring/pipeline.yaml

# A numeric user, so that Kubernetes can verify runAsNonRoot.
USER 65532:65532

# 9999: Bytewax cluster traffic between processes; 3030: Bytewax API and /metrics.
EXPOSE 9999 3030

ENTRYPOINT ["python", "-m", "bytewax.run", "dataflows.iot"]
