# Two commands set everything up on a fresh machine with Python 3.11:
#   make demo   create the venv, synthesize demo data, materialize every asset
#   make test   create the venv if missing, run the test suite
# and `make ui` opens the Dagster UI on http://127.0.0.1:3000 (`make mlflow-ui`: MLflow on :5000).

PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.maskops-installed
PYTEST_ARGS ?=

.PHONY: demo test test-hostile test-production ui mlflow-ui lint bench clean-state

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	$(BIN)/python -m pip check
	@touch $@

demo: $(STAMP)
	$(BIN)/maskops demo

# The whole suite, the production profile's end-to-end test (tests/test_production.py) included.
test: $(STAMP)
	@bash .ci/ensure-tools
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -n 2 --durations=15 $(PYTEST_ARGS)

# Only the hostile suite: broken datasets and label files, tiny images, killed runs, attacks on the servers.
test-hostile: $(STAMP)
	@bash .ci/ensure-tools
	$(BIN)/python -m pytest -n 2 -m hostile $(PYTEST_ARGS)

# Only the production profile: PostgreSQL, RabbitMQ and Redis on 127.0.0.1 (already running here), moto for S3.
test-production: $(STAMP)
	@bash .ci/ensure-tools
	$(BIN)/python -m pytest -m production $(PYTEST_ARGS)

ui: $(STAMP)
	$(BIN)/maskops ui

mlflow-ui: $(STAMP)
	$(BIN)/maskops mlflow-ui

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean-state:
	rm -rf .maskops
