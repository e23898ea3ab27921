# voxline: `make demo` runs the example agent offline; `make test` runs the whole suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
EXTRAS := local,piper,openai,anthropic,deepgram,elevenlabs,twilio,postgres,redis,sip

.PHONY: install install-dev system-deps demo test bench lint clean

# System programs: espeak-ng (fallback voice), redis-server (live state, tests),
# pocketsphinx-testdata (real recorded speech for tests), sip-tester (SIPp, the far end
# of the SIP tests).
SYSTEM_PROGRAMS := espeak-ng redis-server
system-deps:
	@missing=""; \
	for p in $(SYSTEM_PROGRAMS); do command -v $$p >/dev/null || missing="$$missing $$p"; done; \
	command -v sipp >/dev/null || missing="$$missing sip-tester"; \
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

install: system-deps $(VENV)/.installed
install-dev: system-deps $(VENV)/.installed-dev

demo: install
	$(BIN)/voxline demo

test: install-dev
	$(BIN)/python -m pytest -q

bench: install-dev
	$(BIN)/python benchmarks/turn_overhead.py

lint: install-dev
	$(BIN)/ruff check voxline tests benchmarks

clean:
	rm -rf $(VENV) var .pytest_cache
