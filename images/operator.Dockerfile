# syntax=docker/dockerfile:1.7
# tpuserve operator: the kopf controllers (`tpuserve operator ...`). Build from the repository root:
#   docker build -f images/operator.Dockerfile -t ghcr.io/tpuserve/operator:0.1.0 .
ARG PYTHON_IMAGE=python:3.12.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
COPY images/constraints.txt images/constraints.txt
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --constraint images/constraints.txt .

FROM ${PYTHON_IMAGE}
COPY --from=build /opt/venv /opt/venv
RUN useradd --uid 65532 --user-group --no-create-home --shell /usr/sbin/nologin tpuserve
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1
USER 65532:65532
ENTRYPOINT ["tpuserve"]
CMD ["operator"]
