# The two commands of the README: `make run` (set up, then the pipeline end to end with DVC)
# and `make test` (set up, then the test suite). Both create .venv on first use.
VENV ?= .venv
# The torch build this project is tested with; override to pick another, on a new .venv (the stamp below does not
# watch it). pip installs the project in the same command, so name another index with --extra-index-url, e.g.
# TORCH_SPEC="torch==2.14.1+cpu torchvision==0.29.1+cpu --extra-index-url https://download.pytorch.org/whl/cpu".
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup setup-dev run transfer test test-any-order ui mlflow-ui clean-data

setup: $(VENV)/.installed
setup-dev: $(VENV)/.installed-dev

# Bytecode is a cache Python writes as it imports: the pipeline's first stages compile what it uses, once, and
# the stages after them load it. An environment that sets PYTHONDONTWRITEBYTECODE would have each stage compile
# its imports again, so the recipes write it regardless. Neither pip's pass (one core) nor compileall over all of
# site-packages (29 s) is needed: make run from fresh clones in one hour, 6 min 07 s with it, 5 min 42 s without.
unexport PYTHONDONTWRITEBYTECODE

# One resolve for torch and the project.
$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --no-compile $(TORCH_SPEC) -e .
	touch $@

# The tests' extra (pytest, pytest-xdist, pytest-randomly, prdc, and dagster-k8s with the Kubernetes client):
# `make run` does not wait for it.
$(VENV)/.installed-dev: $(VENV)/.installed
	$(VENV)/bin/pip install --quiet --no-compile -e ".[dev]"
	touch $@

# The generator pipeline (offline). A plain `dvc repro` also runs the domain transfer (`make transfer`),
# whose default target, MNIST, is downloaded on first use.
GENERATOR_STAGES = evaluate_dcgan evaluate_cgan evaluate_icgan

run: setup
	dvc repro $(GENERATOR_STAGES)

transfer: setup
	dvc repro evaluate_transfer_dtn evaluate_transfer_cyclegan

test: setup-dev
	python -m pytest -q -n 2 --dist loadfile -p no:randomly   # two workers; a test file stays on one (module fixtures)

# The same suite with every test in a random order, spread test by test over the workers (pytest-randomly
# prints the seed; SEED=<it> reruns that order)
test-any-order: setup-dev
	python -m pytest -q -n 2 --dist load -p randomly $(if $(SEED),--randomly-seed=$(SEED))

# Run history lives in .dagster_home (ignored by git), so it survives restarts of the UI.
ui: setup
	mkdir -p .dagster_home && touch .dagster_home/dagster.yaml
	DAGSTER_HOME=$(abspath .dagster_home) dagster dev

mlflow-ui: setup
	@echo "MLflow UI: http://localhost:5000/#/?workflowType=machine_learning (the model-training view)"
	mlflow ui --backend-store-uri sqlite:///mlflow.db
