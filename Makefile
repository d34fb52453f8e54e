# sellakit: two commands for a newcomer (`make run`, `make test`), plus `make check` (the unit
# tests in minutes), `make lab`, `make book`, `make bench` and `make constraints`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch, installed first when $(VENV) has none (a CUDA torch already there is kept). On a CPU
# machine where PyPI serves the CUDA build: make install TORCH="torch==2.13.0 --index-url
# https://download.pytorch.org/whl/cpu"
TORCH ?= torch==2.13.0
# The exact versions the test suite last passed with (`make constraints` rewrites it from the
# venv). A CUDA torch of another version than the file's: make install CONSTRAINTS=
CONSTRAINTS ?= constraints.txt
STAMP := $(VENV)/.sellakit-installed
# Test processes (pytest-xdist, at most 4): the notebooks run as two chains, the LLM chain
# (03-05) and the rest (00-02, the KG films 06-08), each on one process, the unit tests around
# them.
# TEST_WORKERS=0: one process.
TEST_WORKERS ?= auto
PYTEST_PROCESSES = -n $(TEST_WORKERS) --maxprocesses 4

.PHONY: install run test check lab bench sync book constraints clean

$(STAMP): pyproject.toml $(CONSTRAINTS)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "make install needs Python >= 3.11 (constraints.txt pins releases that do): make PYTHON=python3.11 ...")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -c 'import torch' 2>/dev/null || $(PY) -m pip install -q --disable-pip-version-check $(TORCH)
	$(PY) -m pip install -q --disable-pip-version-check $(if $(CONSTRAINTS),-c $(CONSTRAINTS)) -e '.[all]'
	@# UMAP's numba kernels into numba's cache (beside the package), once: ~25 s here, not in 03
	$(PY) -c 'from sellakit.viz import compile_kernels; print(f"UMAP kernels compiled in {compile_kernels()} s")'
	touch $@

install: $(STAMP)

## run: every notebook (quick mode unless SELLAKIT_QUICK=0; quick mode runs the two chains,
## 03-05 and 00-02, 06-08, side by side); figures/, build/summary.md and, in quick mode,
## the executed notebooks/*.ipynb a code host shows
run: install
	$(VENV)/bin/sellakit run

## test: unit tests, notebooks executed in quick mode, packaging checks, browser tests
test: install
	$(PY) -m pytest $(PYTEST_PROCESSES)

## check: the unit tests without notebooks, browser or `slow` (under 3 minutes on 2 cores); `slow`
## marks the few end-to-end tests that spawn processes (the two-process accelerate run), which
## `make test` still runs
check: install
	$(PY) -m pytest $(PYTEST_PROCESSES) -q -m "not notebook and not browser and not slow"

## constraints: record the venv's versions (after `make test` passed) in constraints.txt
constraints: install
	{ echo "# The versions \`make test\` last passed with; \`make constraints\` rewrites this file."; \
	  $(PY) -m pip freeze --exclude-editable --disable-pip-version-check \
	  | grep -iv '^sellakit[= @]' | sed -E 's/^(torch==[^+]+)\+.*/\1/'; } > constraints.txt
	touch $(STAMP)  # the venv is what the file now says

## lab: JupyterLab on the notebooks (kernels run in notebooks/: relative paths are made absolute)
lab: install
	$(foreach v,SELLAKIT_CACHE SELLAKIT_BUILD SELLAKIT_DBP5L,$(if $($(v)),$(v)=$(abspath $($(v))))) \
	$(VENV)/bin/jupyter lab notebooks/

## bench: the README's CF table (paper preset; minutes on a CPU)
bench: install
	$(VENV)/bin/sellakit bench cf --dataset ml-1m --models mf,biased_mf,lightgcn,sasrec --preset paper --out bench/cf_ml1m.json

## sync: regenerate each notebook's .ipynb from its jupytext .py (the .py is the source)
sync: install
	$(VENV)/bin/jupytext --sync notebooks/*.py

## book: the static site of the notebooks `make run` executed (build/book/index.html); no re-execution
book: install
	$(VENV)/bin/sellakit book

clean:
	rm -rf build .pytest_cache
