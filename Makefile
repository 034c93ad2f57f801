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
# DistillMOS (naturalness scores, voxmith.quality) declares torchaudio as a dependency, but no CPU
# torchaudio matches our torch and scoring never uses it: install it without its dependencies
# (the ones it does use, torch/numpy/soundfile, come with voxmith). Not in pyproject.toml for
# that reason: pip would resolve torchaudio and with it another torch.
NO_DEPS := distillmos==0.9.1 xls-r-sqa==0.1.0

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
	$(PIP) install -c $(TORCH_PIN) --no-deps $(NO_DEPS)
	touch $@

$(VENV)/.installed-test: pyproject.toml $(TORCH_PIN)
	$(PIP) install -c $(TORCH_PIN) "setuptools<81" wheel
	$(PIP) install -c $(TORCH_PIN) -e ".[test,zh,yue,umap]"
	$(PIP) install -c $(TORCH_PIN) --no-deps $(NO_DEPS)
	touch $@ $(VENV)/.installed

screenshots: $(VENV)/.installed-test
	VOXMITH_UPDATE_SCREENSHOTS=1 $(PY) -m pytest -q tests/test_webui.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
