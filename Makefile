# Set-up and the two README commands. Everything a fresh machine needs is installed here.
PYTHON ?= python3
VENV   ?= .venv
# The CPU build of torch is installed first, pinned; the package's own requirement is a
# range that this build satisfies, so pip never pulls a multi-GB CUDA build.
TORCH  ?= torch==2.13.0
BIN    := $(VENV)/bin

.PHONY: demo test setup bench lint clean reproduce chromium compiler

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev,distributed,report,llc]"
	touch $@

setup: $(BIN)/.installed chromium compiler

# The C++ compiler that builds the MLP's CPU kernel on first use (interp/native.py; without
# one interp runs the kernel's Python reference, the same bits, slower). Debian's g++.
compiler:
	command -v $${CXX:-c++} >/dev/null || (apt-get update && apt-get install -y \
		--no-install-recommends g++)

# The browser of the HTML reports' tests (playwright drives it; Debian's package, as root).
chromium:
	command -v chromium >/dev/null || (apt-get update && apt-get install -y \
		--no-install-recommends chromium)

# Main job: train the paper's coexistence run, analyze it, write figures, a summary and
# report.html (the page to click through, docs/report.md).
demo: setup
	$(BIN)/interp train --steps 1000 --out checkpoints/demo.h5 --overwrite
	$(BIN)/interp analyze checkpoints/demo.h5 --out checkpoints/demo-analysis --overwrite --html

# Test suite (slow tests excluded by pyproject's addopts; `make test-slow` runs them).
# pytest's exit code 5 ("no tests collected") is not a failure of the suite.
test: setup
	$(BIN)/python -m pytest -q || [ $$? -eq 5 ]

test-slow: setup
	$(BIN)/python -m pytest -q -m slow || [ $$? -eq 5 ]

# Reproduce the paper's claims (analyses/run_all.py, docs/reproductions.md) at the paper's
# settings, about 45 minutes on one core; `make reproduce QUICK=1` runs the small version
# (about 1.5 minutes). Outputs: checkpoints/reproductions[-quick]/summary.md.
reproduce: setup
	OMP_NUM_THREADS=1 $(BIN)/python analyses/run_all.py $(if $(QUICK),--quick)

bench: setup
	$(BIN)/python -m benchmarks.run

lint: setup
	$(BIN)/ruff check interp tests benchmarks analyses

clean:
	rm -rf $(VENV) build *.egg-info
