# tpuserve operator: the kopf controllers (`tpuserve operator ...`). Build from the repository root:
#   docker build -f images/operator.Dockerfile -t REGISTRY/operator:0.1.0 .
# BASE is the public image users pull; the tests build on a local stand-in (docs/images.md says why).
ARG BASE=python:3.13-slim-trixie

FROM ${BASE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Dependencies first (their layer survives source changes), at the tested versions (images/constraints.txt): the base
# list only, no extras; the operator imports nothing else (tests/unit/test_operator_deps.py).
COPY pyproject.toml images/constraints.txt ./
RUN python3 -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
       > requirements.txt \
    && python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --constraint constraints.txt --requirement requirements.txt
COPY README.md ./
COPY operator/ operator/
RUN /opt/venv/bin/pip install --no-deps . && /opt/venv/bin/pip check

FROM ${BASE}
COPY --from=build /opt/venv /opt/venv
RUN useradd --uid 65532 --user-group --no-create-home --shell /usr/sbin/nologin tpuserve
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1
USER 65532:65532
ENTRYPOINT ["tpuserve"]
CMD ["operator"]
