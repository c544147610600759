# The two set-up commands of the README: `make demo` (main job) and `make test`.
# Both create .venv on first use and install tfunite with every framework, pinned by
# constraints.txt (what was tested), so a fresh machine gets the same versions.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint typecheck bench matrix matrix-here golden clean fuzz faults

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q pip==26.3
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[all,dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/python examples/gan.py

test: install
	$(BIN)/python -m pytest -n 2 -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy over core/ and bridges/ laid out as the installed package ([tool.mypy] in pyproject.toml).
typecheck: install
	$(BIN)/python maint/typecheck.py

bench: install
	$(BIN)/python bench/run_all.py

# Long runs of the reliability tests (CI runs a seeded, bounded number of each):
# `make fuzz` 2,000 random examples per reader (hypothesis profile "fuzz");
# `make faults` 110 SIGKILLs of tu.save plus 40 of port's .keras writer.
fuzz: install
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest tests/test_fuzz.py -q -s

faults: install
	TFUNITE_FAULT_KILLS=110 TFUNITE_FAULT_SEED=$$RANDOM $(BIN)/python -m pytest tests/test_faults.py -q -s

# Maintainer targets (maint/ is not installed with tfunite: run them in a checkout).
# `make matrix` builds one venv per TensorFlow line (~2 GB of downloads the first time);
# `make matrix-here` re-probes only this environment's line (.venv is the tf-2.21 pins).
matrix: install
	$(BIN)/python maint/matrix.py

matrix-here: install
	$(BIN)/python maint/matrix.py --here

golden: install
	$(BIN)/python maint/golden.py

clean:
	rm -rf $(VENV) .matrix build *.egg-info
