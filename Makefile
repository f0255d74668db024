# Two commands do all the set-up on a fresh machine: `make demo` (the main job) and `make test`.
# Each creates the virtual environment when it is missing. A torch already in the venv (say a CUDA
# build) is kept; otherwise torch==2.13.0 is installed before the project, so pip never resolves
# the project's `torch>=2.4` to a multi-GB CUDA wheel on a CPU machine.
VENV ?= .venv
PYTHON ?= python3
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.t2iscale-installed
DEMO_OUT ?= demo-study
REPORT_CHECK_OUT ?= out/report-check

.PHONY: demo test lint install clean-venv report-check

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@$(PY) -c "import torch" 2>/dev/null && echo "keeping installed torch $$($(PY) -c 'import torch; print(torch.__version__)')" \
		|| $(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/t2iscale demo --out $(DEMO_OUT)

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q -n 2 --dist loadfile

# The report in a real browser: builds the report of a tiny study (about a minute on 2 cores) and opens it in
# headless Chromium at 800 and 1400 px (every image loads, no sideways scrolling, the headline first). Needs
# Chromium: apt-get install -y chromium chromium-driver (.ci/run installs it). Screenshots: $(REPORT_CHECK_OUT)/screenshots.
report-check: $(STAMP)
	$(PY) tests/report/report_check.py --out $(REPORT_CHECK_OUT)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests

clean-venv:
	rm -rf $(VENV)
