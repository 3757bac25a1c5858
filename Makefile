# Set-up and entry points. `make demo` and `make test` create .venv on first use.
VENV := .venv
BIN := $(VENV)/bin
# The first interpreter found that is Python >= 3.12; pyenv shims that point at an
# older global version fail the check, so the pyenv install folder is tried too.
PYTHON ?= $(shell for p in python3.12 python3.13 python3 \
	$$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.1[2-9]*/bin/python3 2>/dev/null); do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1 \
	&& { command -v $$p || echo $$p; } && break; done)
OUT ?= out/rbm_digits

.PHONY: demo test test-slow lint format lock clean

$(BIN)/.installed: pyproject.toml constraints.txt
	@test -n "$(PYTHON)" || { echo "Python >= 3.12 not found; set PYTHON=/path/to/python3.12"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[examples,test,lint]"
	touch $@

demo: $(BIN)/.installed
	$(BIN)/python examples/rbm_digits.py --output $(OUT)

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q

test-slow: $(BIN)/.installed
	$(BIN)/python -m pytest -q -m slow

lint: $(BIN)/.installed
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

format: $(BIN)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

lock: $(BIN)/.installed
	{ echo "# Pinned versions for a reproducible install (pip install -c constraints.txt)."; \
	  echo "# Regenerate with: make lock"; \
	  $(BIN)/python -m pip freeze --exclude-editable; } > constraints.txt

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache
