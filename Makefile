# One command sets up and synthesizes the example app (`make synth`), one runs the tests (`make test`).
# Every target installs what it needs first, so both work on a fresh clone.
SHELL := /bin/bash
VENV := .venv
# node_modules/.bin first: it holds a supported Node LTS for jsii and the CDK CLI.
export PATH := $(CURDIR)/node_modules/.bin:$(CURDIR)/$(VENV)/bin:$(PATH)
PYTEST_ARGS ?=

.PHONY: setup app synth test lint bench wheel proxy-wheel demo clean protocol

setup: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[dev]'
	touch $@

node_modules/.installed: package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

# What cdk.json runs, so `npx cdk synth` sets itself up on a fresh clone too.
app: setup
	python examples/app.py

synth: setup
	cdk synth --quiet
	@echo "Templates written to cdk.out/"

test: setup
	pytest $(PYTEST_ARGS)

lint: setup
	ruff check .
	ruff format --check .
	mypy

bench: setup
	python -m benchmarks

wheel: setup
	python -m build --wheel --outdir dist .

# The device's distribution, cdk-secure-tunnel-proxy: the local proxy and the command without the CDK.
proxy-wheel: setup
	python -m build --wheel --outdir dist packaging/proxy

# Bytes through a tunnel with no AWS account: deploy an example stack to local AWS, run both proxies.
demo: setup
	python examples/offline_demo.py

# The generated protobuf module is committed; regenerate it after editing message.proto.
protocol: setup
	cd constructs/cdk_secure_tunnel/protocol && python -m grpc_tools.protoc -I. --python_out=. --pyi_out=. message.proto

clean:
	rm -rf cdk.out dist build .pytest_cache .mypy_cache .ruff_cache
