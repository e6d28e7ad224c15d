# Everything starts from a fresh clone: `make run` (the live demo) and
# `make test` install what they need (a virtualenv in .venv, Kafka's jars from
# Maven Central, Debian's rabbitmq-server) and start the local stack.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
CLI    := $(PY) -m cli.main
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup run demo test test-unit test-integration stack-up stack-up-secure stack-down stack-status bench proto udf-go clean

setup: $(STAMP)

# rustup's cargo, where a shell that did not read ~/.profile would miss it
export PATH := $(if $(wildcard $(HOME)/.cargo/bin/cargo),$(HOME)/.cargo/bin:)$(PATH)
NATIVE := native/Cargo.toml native/Cargo.lock $(wildcard native/src/*.rs)

# pip builds native/ (the Kafka reader and the JSON decoder's Rust path) with
# cargo, compiling librdkafka and OpenSSL from crates.io (OpenSSL's build
# needs perl and make); without cargo the package still installs, and reads
# Kafka and decodes JSON more slowly.
$(STAMP): pyproject.toml $(NATIVE)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@command -v cargo >/dev/null || echo "warning: cargo not found: native/ is not built (install Rust with rustup)" >&2
	@command -v perl >/dev/null || echo "warning: perl not found: native/ cannot build OpenSSL (apt-get install perl)" >&2
	$(PY) -m pip install -q -e '.[test,bench]'
	touch $(STAMP)

run: demo

demo: setup
	$(CLI) stack up
	$(CLI) demo

# The secured listeners too: the tests of TLS and SASL use them.
test: setup
	$(CLI) stack up --secure
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: setup
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

test-integration: setup
	$(CLI) stack up --secure
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

stack-up: setup
	$(CLI) stack up

stack-up-secure: setup
	$(CLI) stack up --secure

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
