# syntax=docker/dockerfile:1.7
# MaxText's JetStream server (maxengine) from the pinned release, with jax[tpu]. A drop-in for Google's
# us-docker.pkg.dev/cloud-tpu-images/inference/maxengine-server:v0.2.2: container args are the same bare
# `key=value` MaxText settings, appended after the release's base config (Google's image runs
# `python3 MaxText/maxengine_server.py MaxText/configs/base.yml "$@"`; this release's module is
# maxtext.inference.maxengine.maxengine_server). Relative paths such as `assets/tokenizer.llama2` resolve in
# /opt/maxtext, which holds the assets in both the old flat and the new tokenizers/ layout.
#   docker build -f images/server.Dockerfile -t ghcr.io/tpuserve/maxengine-server:0.1.0 .
ARG PYTHON_IMAGE=python:3.12.12-slim-bookworm
ARG MAXTEXT_COMMIT=3f36aef23439dd5875b48cbf294bbcba1996a726
# The JetStream commit the MaxText release names in its requirements.txt.
ARG JETSTREAM_COMMIT=29329e8e73820993f77cfc8efe34eb2a73f5de98
ARG JAX_VERSION=0.10.0

FROM ${PYTHON_IMAGE} AS build
ARG MAXTEXT_COMMIT
ARG JETSTREAM_COMMIT
ARG JAX_VERSION
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
ADD https://github.com/AI-Hypercomputer/maxtext/archive/${MAXTEXT_COMMIT}.tar.gz /tmp/maxtext.tar.gz
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN tar -xzf /tmp/maxtext.tar.gz -C /opt && mv "/opt/maxtext-${MAXTEXT_COMMIT}" /opt/maxtext \
    && sed -E 's/>=/==/' /opt/maxtext/src/dependencies/requirements/generated_requirements/tpu-requirements.txt \
       > /tmp/maxtext-pins.txt \
    && python -m venv /opt/venv \
    && /opt/venv/bin/pip install --requirement /tmp/maxtext-pins.txt "jax[tpu]==${JAX_VERSION}" \
    && /opt/venv/bin/pip install --no-deps /opt/maxtext \
       "google-jetstream @ https://github.com/AI-Hypercomputer/JetStream/archive/${JETSTREAM_COMMIT}.zip" \
    && cp -n /opt/maxtext/src/maxtext/assets/tokenizers/tokenizer.* /opt/maxtext/src/maxtext/assets/ \
    && ln -s src/maxtext/assets /opt/maxtext/assets \
    && test -s /opt/maxtext/assets/tokenizer.llama2

FROM ${PYTHON_IMAGE}
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/maxtext/src/maxtext/assets /opt/maxtext/src/maxtext/assets
COPY --from=build /opt/maxtext/src/maxtext/configs /opt/maxtext/src/maxtext/configs
RUN ln -s src/maxtext/assets /opt/maxtext/assets \
    && useradd --uid 65532 --user-group --no-create-home --shell /usr/sbin/nologin tpuserve
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 \
    MAXTEXT_REPO_ROOT=/opt/maxtext MAXTEXT_ASSETS_ROOT=/opt/maxtext/src/maxtext/assets
WORKDIR /opt/maxtext
USER 65532:65532
# gRPC 9000 (hard-coded in MaxText), Prometheus on `prometheus_port` (9100 in the GKE samples).
EXPOSE 9000 9100
ENTRYPOINT ["python3", "-m", "maxtext.inference.maxengine.maxengine_server", "/opt/maxtext/src/maxtext/configs/base.yml"]
