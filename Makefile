# tpuserve developer entry points. The two that matter to a newcomer:
#   make demo   the main job: local cluster + operator + JetStream server + a real benchmark (set-up included)
#   make test   everything CI runs: set-up, lint, type check, all test tiers
# (make mutation, the mutation score of the figures' modules, is separate: docs/development.md)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: system-deps setup tools jetstream vllm lint test test-unit test-images cluster-up cluster-down crds demo perf-bench perf-convert perf-scale mutation clean

# The development-only packages (operator/localcluster, operator/tpuserve_dev) are not in the wheel; the .pth
# puts operator/ on the venv's path, so `python -m tpuserve_dev.demo` and the tests' subprocesses import them.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[bench,convert,test]'
	$(PY) -c 'import pathlib, site; pathlib.Path(site.getsitepackages()[0], "tpuserve-dev.pth").write_text("$(CURDIR)/operator\n")'
	rm -f $(VENV)/.installed-* && touch $@

setup: $(STAMP)

# Debian packages the tests need (prometheus, openssl; docker.io and debootstrap for the image tier).
system-deps:
	bash tests/system-deps.sh

# Test-cluster binaries (kube-apiserver, controller-manager, scheduler, kubectl, etcd, kwok, helm),
# built once per version into ~/.cache/tpuserve-tools.
tools:
	bash operator/localcluster/build-tools.sh >/dev/null

# JetStream 0.2.2 (the upstream server and client the tests compare against) in its own cached venv.
jetstream:
	bash tests/jetstream/setup-venv.sh >/dev/null

# vLLM's CPU build (a real vLLM OpenAI server and `vllm bench serve`) in its own cached venv, and the small
# random-weight Llama-3-architecture model it serves (tests/vllm).
vllm:
	bash tests/vllm/model.sh >/dev/null

lint: setup
	$(VENV)/bin/ruff check operator tests
	$(VENV)/bin/ruff format --check operator tests
	$(VENV)/bin/mypy

test-unit: system-deps setup tools
	$(VENV)/bin/pytest -m "not cluster and not jetstream and not vllm and not images" tests

test: system-deps setup tools jetstream vllm lint
	$(VENV)/bin/pytest tests

# The image tier alone: builds all four images in a private Docker daemon (cached under ~/.cache/tpuserve-tools)
# and runs them (the operator one against the local cluster, hence tools).
test-images: system-deps setup tools
	$(VENV)/bin/pytest -m images tests

# Everything generated from the models and the chart: crds/, docs/api.md, the chart's crds/ and dashboards,
# manifests/install.yaml. Tests fail when any of them is stale.
crds: setup tools
	$(VENV)/bin/tpuserve crds --output crds --docs docs/api.md
	$(PY) -m tpuserve_dev.chart.generate

cluster-up: setup tools
	$(PY) -m tpuserve_dev.cluster up

cluster-down: setup
	$(PY) -m tpuserve_dev.cluster down

demo: system-deps setup tools jetstream
	$(PY) -m tpuserve_dev.demo

# Performance scripts (they print figures; they are not tests). Figures are recorded in docs/.
perf-bench: setup jetstream
	$(PY) -m tpuserve_dev.perf.bench_client --server go

perf-convert: setup
	$(PY) -m tpuserve_dev.perf.convert_perf

perf-scale: setup tools
	$(PY) -m tpuserve_dev.perf.scale_operator --runs 200 1000

# Mutation testing (not part of `make test`; 3–8 minutes): mutmut mutates the modules whose numbers users trust
# (bench/metrics.py, tpu.py, results.py, convert/verify.py), runs their fast unit tests against every mutant and fails
# under 90 % per module; then hand-made mutants of what mutmut leaves alone (properties, catalog data). mutmut 3
# knows only the ./, src/ and source/ layouts, so it runs in .mutation/, where src links to operator/ (config:
# [tool.mutmut] in pyproject.toml). Figures and equivalent mutants: docs/development.md.
mutation: setup
	rm -rf .mutation && mkdir .mutation
	ln -s ../operator .mutation/src && ln -s ../tests .mutation/tests && ln -s ../pyproject.toml .mutation/pyproject.toml
	cd .mutation && ../$(VENV)/bin/mutmut run --max-children 2 >mutmut.log 2>&1 || { tail -c 3000 mutmut.log; exit 1; }
	cd .mutation && ../$(PY) -m tpuserve_dev.mutation.score
	$(PY) -m tpuserve_dev.mutation.blind_spots

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .mutation
