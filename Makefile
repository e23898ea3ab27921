# voxline: `make demo` runs the example agent offline; `make test` runs the whole suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
EXTRAS := local,piper,openai,anthropic,deepgram,elevenlabs,twilio,postgres,redis,sip,webrtc,platform,stripe,moonshine

.PHONY: install install-dev system-deps widget demo test bench lint clean

# System programs: espeak-ng (fallback voice), redis-server (live state, tests),
# pocketsphinx-testdata (real recorded speech for tests), sip-tester (SIPp, the far end
# of the SIP tests), haproxy (the load balancer of the scale-out test).
SYSTEM_PROGRAMS := espeak-ng redis-server haproxy
system-deps:
	@missing=""; \
	for p in $(SYSTEM_PROGRAMS); do command -v $$p >/dev/null || missing="$$missing $$p"; done; \
	command -v sipp >/dev/null || missing="$$missing sip-tester"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v npm >/dev/null || missing="$$missing nodejs npm"; \
	[ -d /usr/share/pocketsphinx/test/data ] || missing="$$missing pocketsphinx-testdata"; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq$$missing; \
	fi

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[$(EXTRAS)]"
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install -q -e ".[$(EXTRAS),dev]"
	touch $@

# The web widget: npm packages pinned by web/package-lock.json, bundled by esbuild
# into package data (voxline/web/widget.js).
WIDGET := voxline/web/widget.js
$(WIDGET): web/package.json web/package-lock.json web/build.mjs $(wildcard web/src/*.js)
	cd web && npm ci --no-audit --no-fund --loglevel=error && node build.mjs

widget: $(WIDGET)

install: system-deps $(VENV)/.installed $(WIDGET)
install-dev: system-deps $(VENV)/.installed-dev $(WIDGET)

demo: install
	$(BIN)/voxline demo

test: install-dev
	# Two test processes on two cores: each local model gets one of them (see shared.thread_cap).
	VOXLINE_CPU_THREADS=1 OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 --dist worksteal

bench: install-dev
	$(BIN)/python benchmarks/turn_overhead.py

lint: install-dev
	$(BIN)/ruff check voxline tests benchmarks

clean:
	rm -rf $(VENV) var .pytest_cache
