# tpuserve converter (`tpuserve convert run ...`; `tpuserve convert mirror ...` for Hugging Face models): MaxText
# maxtext-v0.2.3 on CPU with PyTorch (to read Meta's .pth shards). Build from the repository root:
#   docker build -f images/converter.Dockerfile -t REGISTRY/converter:0.1.0 .
# BASE is the public image users pull; the tests build on a local stand-in (docs/images.md says why).
# The venv is built in the final stage: copying a multi-GB venv from a build stage would double the build's disk
# and time; the only compiled dependency is built in its own stage (see below).
ARG BASE=python:3.13-slim-trixie

# Wheels for the few locked packages PyPI has only as C/C++ sources (images/requirements/compiled.txt): built here,
# so the compiler stays out of the image.
FROM ${BASE} AS wheels
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY images/requirements/maxtext.lock images/requirements/compiled.txt /tmp/
# python3-dev only where the base lacks the headers (Debian's python3; python.org's image ships them).
# hadolint ignore=SC2046
RUN headers=$(python3 -c "import sysconfig; print(sysconfig.get_paths()['include'])") \
    && apt-get update \
    && apt-get install -y --no-install-recommends g++ $([ -e "$headers/Python.h" ] || echo python3-dev) \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /tmp/venv \
    && /tmp/venv/bin/pip wheel --no-deps --constraint /tmp/maxtext.lock --wheel-dir /wheels --requirement /tmp/compiled.txt

# The stages up to the dependency install are byte-identical in converter.Dockerfile and server.Dockerfile,
# so a builder reuses their layers for both images.
FROM ${BASE}
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# MaxText, JetStream's and tpuserve's dependencies: one conflict-free resolution (images/lock.sh).
COPY --from=wheels /wheels /tmp/wheels
COPY images/requirements/maxtext.lock /tmp/maxtext.lock
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-deps --find-links /tmp/wheels --requirement /tmp/maxtext.lock \
    && rm -rf /tmp/wheels
# torch (the lock's resolution used this version): the CPU wheel index by default, ~0.2 GB. PyPI's own torch
# (TORCH_INDEX_URL=https://pypi.org/simple) is the CUDA build, which also runs on a CPU but brings ~3 GB of CUDA
# libraries.
ARG TORCH_VERSION=2.11.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN /opt/venv/bin/pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
RUN /opt/venv/bin/pip install --no-deps . \
    && /opt/venv/bin/pip check \
    && /opt/venv/bin/python -c "import maxtext, torch, tensorstore, tpuserve.convert.run" \
    && rm -rf /src /tmp/maxtext.lock \
    && useradd --uid 65532 --user-group --create-home --home-dir /home/tpuserve --shell /usr/sbin/nologin tpuserve \
    && mkdir -p /var/tmp/tpuserve-convert && chown 65532:65532 /var/tmp/tpuserve-convert
# JAX on CPU (Llama conversion needs no TPU); scratch for the staged source and checkpoints (mount an emptyDir).
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 JAX_PLATFORMS=cpu TPUSERVE_CONVERT_STEP=maxtext
USER 65532:65532
WORKDIR /home/tpuserve
ENTRYPOINT ["tpuserve"]
CMD ["convert", "--help"]
