# The commands everyone runs; CI runs `make test` (see .ci/run).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install container-env compose-up demo test test-containers test-multinode test-e2e test-unit lint bench bench-rounds bench-api bench-images bench-hfl clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)  ## Create .venv with FLOps and what its tests and examples need.

demo: $(STAMP)  ## Run a complete FL project on this machine (sklearn digits, 3 learners, 5 rounds).
	$(BIN)/flops demo $(ARGS)

container-env:  ## Install and start dockerd, buildah, the registry, qemu arm64; bootstrap the base image.
	bash scripts/container-env.sh

compose-up:  ## The management stack with Compose: pull or build its images, start it, wait until healthy.
	bash scripts/compose-up.sh $(ARGS)

test: $(STAMP)  ## Unit and end-to-end tests (real manager, MLflow, data servers, Flower processes).
	$(BIN)/python -m pytest -m "not container and not multinode" $(PYTEST_ARGS)

test-containers: $(STAMP) container-env  ## Container tests: real dockerd, buildah, registry, arm64 under qemu.
	$(BIN)/python -m pytest -m container $(PYTEST_ARGS)

test-multinode: $(STAMP)  ## Multi-node tests (needs root): worker nodes as network namespaces on a bridge.
	$(BIN)/python -m pytest -m multinode $(PYTEST_ARGS)

test-unit: $(STAMP)
	$(BIN)/python -m pytest -m "not e2e and not container and not multinode" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy flops_core flops_utils flops_data_server flops_aggregator flops_learner flops_manager flops_cli image_builder

bench: $(STAMP)  ## Benchmarks; each prints ratios against a baseline measured in the same run.
	$(BIN)/python bench/round_overhead.py $(ARGS)
	$(BIN)/python bench/api_latency.py

bench-rounds: $(STAMP)
	$(BIN)/python bench/round_overhead.py $(ARGS)

bench-api: $(STAMP)
	$(BIN)/python bench/api_latency.py $(ARGS)

bench-images: $(STAMP)
	$(BIN)/python bench/image_build.py $(ARGS)

bench-hfl: $(STAMP)
	$(BIN)/python bench/hfl_traffic.py $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
