# Two commands from a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# An editable install in "compat" mode puts the checkout on sys.path, so
# twisted/plugins/chat_plugin.py is found by twistd (the default editable
# mode maps top-level packages only).
INSTALL := $(BIN)/pip install --quiet --config-settings editable_mode=compat -e
ARGS ?=

.PHONY: run test lint bench clean

$(BIN)/pip:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel

run: $(BIN)/pip
	$(INSTALL) .
	mkdir -p var
	$(BIN)/twistd -n --pidfile var/twistd.pid chat --users var/users.json --audit-log var/server.log --history var/history.sqlite3 $(ARGS)

test: $(BIN)/pip
	$(INSTALL) '.[test]'
	$(BIN)/ruff check twisted_chat twisted tests
	$(BIN)/mypy twisted_chat
	$(BIN)/python -m pytest $(ARGS)

clean:
	rm -rf $(VENV) var build *.egg-info
