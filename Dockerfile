# svcprobe agent image.
#
#   docker build -t svcprobe:0.1.0 .
#
# Two stages: `build` makes a virtualenv in /opt/svcprobe from pinned wheels
# (requirements-image.txt, installed with --no-deps so nothing unpinned sneaks in) plus a wheel
# of this repository; the runtime stage copies only that virtualenv onto the same slim Python
# base. It runs as numeric UID/GID 10001, needs no shell (exec-form ENTRYPOINT) and no
# writable root filesystem.
#
# Not verified here: no container engine is available where this project is tested.
# tests/chart/test_dockerfile.py runs the same install steps in a clean virtualenv and checks
# the entry point; see chart/README.md ("Container image").

# Pin by digest in a release pipeline (python:3.11-slim-bookworm@sha256:...).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# Build backend for the svcprobe wheel, pinned; only in this stage.
ARG BUILD_REQUIREMENTS="setuptools==80.9.0 wheel==0.45.1"
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/build \
 && /opt/build/bin/pip install --no-deps ${BUILD_REQUIREMENTS}
RUN python -m venv /opt/svcprobe
COPY requirements-image.txt /src/requirements-image.txt
RUN /opt/svcprobe/bin/pip install --no-deps --only-binary=:all: -r /src/requirements-image.txt
COPY pyproject.toml README.md /src/
COPY agent /src/agent
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /wheels /src \
 && /opt/svcprobe/bin/pip install --no-deps /wheels/svcprobe-*.whl \
 && /opt/svcprobe/bin/pip check

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="svcprobe" \
      org.opencontainers.image.description="In-cluster DNS and Service connectivity diagnostic agent" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/svcprobe /opt/svcprobe
ENV PATH=/opt/svcprobe/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 9142
ENTRYPOINT ["svcprobe"]
CMD ["run", "--config", "/etc/svcprobe/config.yaml"]
