# syntax=docker/dockerfile:1.7
# tpuserve converter (`tpuserve convert run ...`, `tpuserve convert mirror ...`): the pinned MaxText release on CPU
# with CPU-only PyTorch; huggingface_hub for the Hugging Face mirror.
# Build from the repository root:
#   docker build -f images/converter.Dockerfile -t ghcr.io/tpuserve/converter:0.1.0 .
# MaxText maxtext-v0.2.3 needs Python >= 3.12. Its generated requirements list the versions its release was
# resolved with as lower bounds (`pkg>=X`); they are installed here as exact pins (`pkg==X`).
ARG PYTHON_IMAGE=python:3.12.12-slim-bookworm
ARG MAXTEXT_COMMIT=3f36aef23439dd5875b48cbf294bbcba1996a726
ARG TORCH_VERSION=2.11.0

FROM ${PYTHON_IMAGE} AS build
ARG MAXTEXT_COMMIT
ARG TORCH_VERSION
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
ADD https://github.com/AI-Hypercomputer/maxtext/archive/${MAXTEXT_COMMIT}.tar.gz /tmp/maxtext.tar.gz
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
COPY images/constraints.txt images/constraints.txt
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN tar -xzf /tmp/maxtext.tar.gz -C /opt && mv "/opt/maxtext-${MAXTEXT_COMMIT}" /opt/maxtext \
    && sed -E 's/>=/==/' /opt/maxtext/src/dependencies/requirements/generated_requirements/tpu-requirements.txt \
       > /tmp/maxtext-pins.txt \
    && awk -F'==' 'NR==FNR { if ($0 !~ /^#/) seen[tolower($1)] = 1; next } !(tolower($1) in seen)' \
       /tmp/maxtext-pins.txt images/constraints.txt > /tmp/tpuserve-pins.txt \
    && python -m venv /opt/venv \
    && /opt/venv/bin/pip install --index-url https://download.pytorch.org/whl/cpu "torch==${TORCH_VERSION}" \
    && /opt/venv/bin/pip install --requirement /tmp/maxtext-pins.txt \
    && /opt/venv/bin/pip install --no-deps /opt/maxtext \
    && /opt/venv/bin/pip install --constraint /tmp/maxtext-pins.txt --constraint /tmp/tpuserve-pins.txt ".[convert]" \
    && /opt/venv/bin/python -c "import maxtext, torch, tensorstore; print('maxtext', maxtext.__file__, 'torch', torch.__version__)"

FROM ${PYTHON_IMAGE}
COPY --from=build /opt/venv /opt/venv
RUN useradd --uid 65532 --user-group --create-home --home-dir /home/tpuserve --shell /usr/sbin/nologin tpuserve \
    && mkdir -p /var/tmp/tpuserve-convert && chown 65532:65532 /var/tmp/tpuserve-convert
# JAX on CPU (Llama conversion needs no TPU); scratch for the staged source and checkpoints (mount an emptyDir).
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 JAX_PLATFORMS=cpu TPUSERVE_CONVERT_STEP=maxtext
USER 65532:65532
WORKDIR /home/tpuserve
ENTRYPOINT ["tpuserve"]
CMD ["convert", "--help"]
