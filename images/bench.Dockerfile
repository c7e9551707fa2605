# syntax=docker/dockerfile:1.7
# tpuserve benchmark client (`tpuserve bench run ...`) with MaxText's tokenizer assets at /opt/maxtext/assets and
# the openorca set at /opt/tpuserve/datasets (bench's default dataset directory). Build from the repository root:
#   docker build -f images/bench.Dockerfile -t ghcr.io/tpuserve/bench:0.1.0 .
ARG PYTHON_IMAGE=python:3.12.12-slim-bookworm
# MaxText release maxtext-v0.2.3 (tpuserve.convert.maxtext.MAXTEXT_COMMIT): only its assets/ are used here.
ARG MAXTEXT_COMMIT=3f36aef23439dd5875b48cbf294bbcba1996a726
# JetStream commit holding the openorca set the manual's run uses (MLPerf's Llama2 calibration set, 1000 rows;
# Git LFS in that repository, hence the media URL). Baked in so `dataset: {name: openorca}` works with no path.
ARG JETSTREAM_COMMIT=00dc5a61fcad66846cb45e449d5078c6424c970e
ARG OPENORCA_FILE=open_orca_gpt4_tokenized_llama.calibration_1000.pkl

FROM ${PYTHON_IMAGE} AS build
ARG MAXTEXT_COMMIT
ARG JETSTREAM_COMMIT
ARG OPENORCA_FILE
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
ADD https://media.githubusercontent.com/media/AI-Hypercomputer/JetStream/${JETSTREAM_COMMIT}/benchmarks/${OPENORCA_FILE} \
    /opt/tpuserve/datasets/${OPENORCA_FILE}
# Fail the build on an LFS pointer or a changed layout, not the first benchmark on a TPU.
RUN /opt/venv/bin/python -c "import pandas as pd, sys; df = pd.read_pickle(sys.argv[1]); \
assert len(df) == 1000 and {'input', 'output'} <= set(df.columns), (len(df), list(df.columns))" \
    "/opt/tpuserve/datasets/${OPENORCA_FILE}"

FROM ${PYTHON_IMAGE}
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/maxtext/assets /opt/maxtext/assets
COPY --from=build /opt/tpuserve/datasets /opt/tpuserve/datasets
RUN useradd --uid 65532 --user-group --create-home --home-dir /home/tpuserve --shell /usr/sbin/nologin tpuserve
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 TPUSERVE_MAXTEXT_DIR=/opt/maxtext
USER 65532:65532
WORKDIR /home/tpuserve
ENTRYPOINT ["tpuserve"]
CMD ["bench", "--help"]
