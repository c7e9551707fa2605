# syntax=docker/dockerfile:1.7
# tpuserve benchmark client (`tpuserve bench run ...`) with MaxText's tokenizer assets at /opt/maxtext/assets
# (CONTRACTS item 11). Build from the repository root:
#   docker build -f images/bench.Dockerfile -t ghcr.io/tpuserve/bench:0.1.0 .
ARG PYTHON_IMAGE=python:3.12.12-slim-bookworm
# MaxText release maxtext-v0.2.3 (tpuserve.convert.maxtext.MAXTEXT_COMMIT): only its assets/ are used here.
ARG MAXTEXT_COMMIT=3f36aef23439dd5875b48cbf294bbcba1996a726

FROM ${PYTHON_IMAGE} AS build
ARG MAXTEXT_COMMIT
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
COPY images/constraints.txt images/constraints.txt
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --constraint images/constraints.txt ".[bench]"
ADD https://github.com/AI-Hypercomputer/maxtext/archive/${MAXTEXT_COMMIT}.tar.gz /tmp/maxtext.tar.gz
# The release keeps tokenizers in assets/tokenizers/; older MaxText (and Google's images) used assets/tokenizer.*:
# provide both so `assets/tokenizer.llama2` keeps working.
RUN mkdir -p /opt/maxtext \
    && tar -xzf /tmp/maxtext.tar.gz -C /tmp \
    && mv "/tmp/maxtext-${MAXTEXT_COMMIT}/src/maxtext/assets" /opt/maxtext/assets \
    && cp -n /opt/maxtext/assets/tokenizers/tokenizer.* /opt/maxtext/assets/ \
    && test -s /opt/maxtext/assets/tokenizer.llama2

FROM ${PYTHON_IMAGE}
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/maxtext/assets /opt/maxtext/assets
RUN useradd --uid 65532 --user-group --create-home --home-dir /home/tpuserve --shell /usr/sbin/nologin tpuserve
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 TPUSERVE_MAXTEXT_DIR=/opt/maxtext
USER 65532:65532
WORKDIR /home/tpuserve
ENTRYPOINT ["tpuserve"]
CMD ["bench", "--help"]
