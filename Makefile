# Two commands set everything up on a fresh machine:
#   make demo   create .venv, install voxmith, import the demo voice and speak a sentence
#   make test   install the test extras, check the import contracts (pyproject.toml) and run the suite
#
# torch: the build already in .venv is kept (CPU or CUDA). With none installed, torch==$(TORCH_VERSION)
# is installed first, so pip never resolves an unpinned torch into several GB of CUDA wheels.
# GPU users: install the CUDA build into .venv first (see README), then run make as usual.

PYTHON ?= python3
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
TORCH_PIN := $(VENV)/torch-constraint.txt

.PHONY: demo test install install-test screenshots clean

demo: $(VENV)/.installed
	$(VENV)/bin/voxmith demo

test: $(VENV)/.installed-test
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

$(PY):
	$(PYTHON) -m venv $(VENV)

$(TORCH_PIN): | $(PY)
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install "torch==$(TORCH_VERSION)"
	$(PY) -c "import torch; print('torch==' + torch.__version__)" > $(TORCH_PIN)

$(VENV)/.installed: pyproject.toml $(TORCH_PIN)
	$(PIP) install -c $(TORCH_PIN) "setuptools<81" wheel
	$(PIP) install -c $(TORCH_PIN) -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(TORCH_PIN)
	$(PIP) install -c $(TORCH_PIN) "setuptools<81" wheel
	$(PIP) install -c $(TORCH_PIN) -e ".[test]"
	touch $@ $(VENV)/.installed

screenshots: $(VENV)/.installed-test
	VOXMITH_UPDATE_SCREENSHOTS=1 $(PY) -m pytest -q tests/test_webui.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
