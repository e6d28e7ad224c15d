# Everything starts from a fresh clone: `make run` (the live demo) and
# `make test` install what they need (a virtualenv in .venv, Kafka's jars from
# Maven Central, Debian's rabbitmq-server) and start the local stack.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
CLI    := $(PY) -m cli.main
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup run demo test test-unit test-integration stack-up stack-down stack-status bench proto udf-go clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,bench]'
	touch $(STAMP)

run: demo

demo: setup
	$(CLI) stack up
	$(CLI) demo

test: setup
	$(CLI) stack up
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: setup
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

test-integration: setup
	$(CLI) stack up
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

stack-up: setup
	$(CLI) stack up

stack-down: setup
	$(CLI) stack down

stack-status: setup
	$(CLI) stack status

BENCH_EVENTS ?= 2000000
bench: setup
	$(CLI) stack up
	$(PY) benchmarks/e2e.py --events $(BENCH_EVENTS)

proto: setup
	udf/generate_stubs.sh
	udf/go/generate.sh

udf-go:
	udf/go/build.sh

clean:
	-$(CLI) stack down
	rm -rf .stack stack/kafka/target
