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
	# DVC pulls in hydra-core, which pins antlr4 4.9; Dagster's asset-selection parser (`--select`,
	# the UI) needs 4.13. Only DVC's optional Hydra composition uses 4.9, and ganops does not, so
	# 4.13 wins (pip reports the conflict; it is expected). dagster-io/dagster#27487.
	$(VENV)/bin/pip install --quiet "antlr4-python3-runtime>=4.13,<5" 2>/dev/null
	touch $@

run: setup
	dvc repro

test: setup
	python -m pytest -q

ui: setup
	dagster dev

mlflow-ui: setup
	mlflow ui --backend-store-uri sqlite:///mlflow.db
