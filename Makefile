# The two commands of the README: `make run` (set up, then the pipeline end to end with DVC)
# and `make test` (set up, then the test suite). Both create .venv on first use.
VENV ?= .venv
# The torch build this project is tested with; override to pick another (e.g. a CPU-only wheel).
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup run test ui mlflow-ui clean-data

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet $(TORCH_SPEC)
	$(VENV)/bin/pip install --quiet -e ".[dev]"
	touch $@

run: setup
	dvc repro

test: setup
	python -m pytest -q

ui: setup
	dagster dev

mlflow-ui: setup
	mlflow ui --backend-store-uri sqlite:///mlflow.db
