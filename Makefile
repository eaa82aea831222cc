# The two commands of the README: `make run` and `make test`. Both install what they need
# into .venv first (Python 3.11).
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test install bench clean chromium

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(VENV)/bin/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/homepilot serve

test: $(STAMP) chromium
	$(VENV)/bin/python -m pytest -q

# The editor's browser tests drive Debian's chromium (Playwright's own download is not
# reachable here); installed once, as root or through sudo.
chromium:
	@test -x /usr/bin/chromium || { \
		as_root=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$as_root apt-get install -y chromium || \
		{ $$as_root apt-get update && $$as_root apt-get install -y chromium; }; }

bench: $(STAMP)
	$(VENV)/bin/python bench/engine_overhead.py

clean:
	rm -rf $(VENV)
