# The chuteflow app image for docker-compose.yml (worker, replay, topics, policy one-shots).
#
# Built from the package, not from a list of folders: the first stage builds the wheel from the
# repository, the second installs that wheel and nothing else. What ships is what pyproject.toml
# lists (packages and package data), so a new package cannot be left out of the image again;
# scripts/check-install builds the wheel the same way and runs every verb from its install.
# Runtime dependencies only: no dev tools, no compiler, no source tree in the final image.
#
#   docker build -t chuteflow:local .          # or: scripts/build-image (podman/buildah)
#
# PYTHON_IMAGE: the base of both stages. scripts/build-image passes a local Debian bookworm base
# (python3.11 in a venv on PATH) where Docker Hub cannot be reached.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS wheel
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# The build context is filtered by .dockerignore (no .venv, out/, caches or .git).
COPY . .
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=wheel /wheels /tmp/wheels
RUN pip install /tmp/wheels/chuteflow-*.whl \
    && rm -rf /tmp/wheels \
    && useradd --create-home --uid 10001 chuteflow

USER chuteflow
# A writable working directory: the worker's faust data, shadow plots (out/) and the policy
# cache (~/.cache/chuteflow) are written relative to it or to $HOME.
WORKDIR /home/chuteflow
CMD ["chuteflow", "--help"]
