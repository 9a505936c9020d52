# The two commands of the README: `make run` (set up, then the pipeline end to end with DVC)
# and `make test` (set up, then the test suite). Both create .venv on first use.
VENV ?= .venv
# The torch build this project is tested with; override to pick another (e.g. a CPU-only wheel).
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup run transfer test test-any-order ui mlflow-ui clean-data

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet $(TORCH_SPEC)
	$(VENV)/bin/pip install --quiet -e ".[dev]"
	touch $@

# The generator pipeline (offline). A plain `dvc repro` also runs the domain transfer (`make transfer`),
# whose default target, MNIST, is downloaded on first use.
GENERATOR_STAGES = evaluate_dcgan evaluate_cgan evaluate_icgan

run: setup
	dvc repro $(GENERATOR_STAGES)

transfer: setup
	dvc repro evaluate_transfer_dtn evaluate_transfer_cyclegan

test: setup
	python -m pytest -q -n 2 --dist loadfile -p no:randomly   # two workers; a test file stays on one (module fixtures)

# The same suite with every test in a random order, spread test by test over the workers (pytest-randomly
# prints the seed; SEED=<it> reruns that order)
test-any-order: setup
	python -m pytest -q -n 2 --dist load -p randomly $(if $(SEED),--randomly-seed=$(SEED))

# Run history lives in .dagster_home (ignored by git), so it survives restarts of the UI.
ui: setup
	mkdir -p .dagster_home && touch .dagster_home/dagster.yaml
	DAGSTER_HOME=$(abspath .dagster_home) dagster dev

mlflow-ui: setup
	@echo "MLflow UI: http://localhost:5000/#/?workflowType=machine_learning (the model-training view)"
	mlflow ui --backend-store-uri sqlite:///mlflow.db
