# MaxText's JetStream server (maxengine) from release maxtext-v0.2.3 with jax[tpu]. A drop-in for Google's
# us-docker.pkg.dev/cloud-tpu-images/inference/maxengine-server:v0.2.2: container args are the same bare
# `key=value` MaxText settings, appended after the release's base config (Google's image runs
# `python3 MaxText/maxengine_server.py MaxText/configs/base.yml "$@"`; this release's module is
# maxtext.inference.maxengine.maxengine_server). Relative paths such as `assets/tokenizer.llama2` resolve in
# /opt/maxtext, which holds the assets in both the old flat and the new tokenizers/ layout.
#   docker build -f images/server.Dockerfile -t REGISTRY/maxengine-server:0.1.0 .
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
# JetStream at the commit MaxText's requirements name (vendored: the repository is archived and PyPI's
# google-jetstream stops at 0.2.2, whose server_lib.run lacks what MaxText calls); libtpu as jax 0.10.0's `tpu`
# extra pins it (unused on CPU: JAX falls back to the CPU when there is no TPU).
ARG LIBTPU_VERSION=0.0.40
COPY images/vendor/google-jetstream-29329e8e.tar.gz /tmp/google-jetstream.tar.gz
RUN /opt/venv/bin/pip install --no-deps --no-build-isolation /tmp/google-jetstream.tar.gz "libtpu==${LIBTPU_VERSION}" \
    && /opt/venv/bin/pip check \
    && rm /tmp/google-jetstream.tar.gz /tmp/maxtext.lock \
    && site=$(/opt/venv/bin/python -c "import maxtext, os; print(os.path.dirname(maxtext.__file__))") \
    && mkdir -p /opt/maxtext \
    && ln -s "$site/configs" /opt/maxtext/configs \
    && cp -r "$site/assets" /opt/maxtext/assets \
    && cp -n /opt/maxtext/assets/tokenizers/tokenizer.* /opt/maxtext/assets/ \
    && test -s /opt/maxtext/assets/tokenizer.llama2 \
    && /opt/venv/bin/python -c "import jetstream.core.server_lib, prometheus_client, shortuuid, pathwaysutils" \
    && useradd --uid 65532 --user-group --create-home --home-dir /home/tpuserve --shell /usr/sbin/nologin tpuserve
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 \
    MAXTEXT_REPO_ROOT=/opt/maxtext MAXTEXT_ASSETS_ROOT=/opt/maxtext/assets
WORKDIR /opt/maxtext
USER 65532:65532
# gRPC 9000 (hard-coded in MaxText), Prometheus on `prometheus_port` (9100 in the GKE samples).
EXPOSE 9000 9100
ENTRYPOINT ["python3", "-m", "maxtext.inference.maxengine.maxengine_server", "/opt/maxtext/configs/base.yml"]
