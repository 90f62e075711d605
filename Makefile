# criu-core: the two set-up commands are `make test` and `make demo` (see README.md).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PLUGINS := plugins/amdgpu plugins/uprobes plugins/netns plugins/cuda_stub
# Debian packages the tests use: crit and pycriu (criu), libfuse3 for the emulated /dev/kfd, iproute2 for netns,
# libdrm-amdgpu1 for the amdgpu plugin's SDMA copy engine.
DEB_PKGS := criu fuse3 libfuse3-3 iproute2 gcc libdrm-amdgpu1

.PHONY: test demo venv deps protos lint bench clean

# editable_mode=compat: each editable install is one static path in a .pth file. setuptools' default writes an
# import hook instead (__editable___*_finder.py), which every interpreter start then imports, pathlib and
# importlib.util with it: `python -c pass` took 20 ms instead of 9 ms, paid by every criu-py command. The
# Makefile is a prerequisite so that a .venv made by an older recipe is installed again by this one.
# setuptools warns that the compat mode is transitional: if a release drops it, drop the option (everything
# works the same, each command 11 ms slower).
$(VENV)/.installed: Makefile pyproject.toml $(addsuffix /pyproject.toml,$(PLUGINS))
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --config-settings editable_mode=compat \
		-e '.[test]' -e 'plugins/amdgpu[emu]' -e plugins/uprobes -e plugins/netns -e plugins/cuda_stub
	touch $@

# Every time, not only at install: with PYTHONDONTWRITEBYTECODE=1 nothing else refreshes a stale .pyc, and each
# criu-py command would recompile every module edited since (compileall only rewrites the stale ones).
venv: $(VENV)/.installed
	@$(PY) -m compileall -q criu_core $(PLUGINS) >/dev/null

deps:
	@missing=""; for p in $(DEB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

test: deps venv
	$(VENV)/bin/pytest -q

demo: venv
	$(VENV)/bin/criu-py demo

protos: venv
	$(PY) -m criu_core.images.regen

lint: venv
	$(VENV)/bin/ruff check criu_core plugins tests

bench: venv
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) build *.egg-info
