# tpuserve benchmark client (`tpuserve bench run ...`) with MaxText's tokenizer assets at /opt/maxtext/assets and
# the openorca set at /opt/tpuserve/datasets (bench's default dataset directory). Build from the repository root:
#   docker build -f images/bench.Dockerfile -t REGISTRY/bench:0.1.0 .
# BASE is the public image users pull; the tests build on a local stand-in (docs/images.md says why).
ARG BASE=python:3.13-slim-trixie
# MaxText release maxtext-v0.2.3 (tpuserve.convert.maxtext.MAXTEXT_RELEASE): only its assets/ are used here,
# taken from its PyPI wheel.
ARG MAXTEXT_VERSION=0.2.3
# The openorca set the manual's run uses (MLPerf's Llama2 calibration set, 1000 rows; Git LFS in JetStream's
# repository at a pinned commit, hence the media URL). Baked in so `dataset: {name: openorca}` works with no path.
# An empty OPENORCA_URL leaves it out (for builds that cannot reach GitHub; mount the set instead).
ARG OPENORCA_FILE=open_orca_gpt4_tokenized_llama.calibration_1000.pkl
ARG OPENORCA_URL=https://media.githubusercontent.com/media/AI-Hypercomputer/JetStream/00dc5a61fcad66846cb45e449d5078c6424c970e/benchmarks/${OPENORCA_FILE}

FROM ${BASE} AS build
ARG MAXTEXT_VERSION
ARG OPENORCA_FILE
ARG OPENORCA_URL
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Dependencies first (their layer survives source changes), at the tested versions (images/constraints.txt).
COPY pyproject.toml images/constraints.txt ./
RUN python3 -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + p['optional-dependencies']['bench']))" > requirements.txt \
    && python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --constraint constraints.txt --requirement requirements.txt
# The release keeps tokenizers in assets/tokenizers/; older MaxText (and Google's images) used assets/tokenizer.*:
# provide both so `assets/tokenizer.llama2` keeps working.
RUN /opt/venv/bin/pip download --no-deps --only-binary=:all: --dest /tmp/maxtext "maxtext==${MAXTEXT_VERSION}" \
    && /opt/venv/bin/python -m zipfile -e /tmp/maxtext/maxtext-*.whl /tmp/maxtext/wheel \
    && mkdir -p /opt/maxtext /opt/tpuserve/datasets \
    && mv /tmp/maxtext/wheel/maxtext/assets /opt/maxtext/assets \
    && cp -n /opt/maxtext/assets/tokenizers/tokenizer.* /opt/maxtext/assets/ \
    && test -s /opt/maxtext/assets/tokenizer.llama2
# Fail the build on an LFS pointer or a changed layout, not the first benchmark on a TPU.
RUN if [ -n "${OPENORCA_URL}" ]; then \
      /opt/venv/bin/python -c "import urllib.request, sys; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])" \
        "${OPENORCA_URL}" "/opt/tpuserve/datasets/${OPENORCA_FILE}" \
      && /opt/venv/bin/python -c "import pandas as pd, sys; df = pd.read_pickle(sys.argv[1]); \
assert len(df) == 1000 and {'input', 'output'} <= set(df.columns), (len(df), list(df.columns))" \
        "/opt/tpuserve/datasets/${OPENORCA_FILE}"; \
    fi
COPY README.md ./
COPY operator/ operator/
RUN /opt/venv/bin/pip install --no-deps . && /opt/venv/bin/pip check

FROM ${BASE}
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/maxtext/assets /opt/maxtext/assets
COPY --from=build /opt/tpuserve/datasets /opt/tpuserve/datasets
RUN useradd --uid 65532 --user-group --create-home --home-dir /home/tpuserve --shell /usr/sbin/nologin tpuserve
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 TPUSERVE_MAXTEXT_DIR=/opt/maxtext
USER 65532:65532
WORKDIR /home/tpuserve
ENTRYPOINT ["tpuserve"]
CMD ["bench", "--help"]
