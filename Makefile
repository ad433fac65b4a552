# Two commands from a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# An editable install in "compat" mode puts the checkout on sys.path, so
# twisted/plugins/chat_plugin.py is found by twistd (the default editable
# mode maps top-level packages only).
INSTALL := $(BIN)/pip install --quiet --config-settings editable_mode=compat -e
ARGS ?=

# irctest 0.1.2, the IRC conformance suite (tests/test_irc_conformance.py),
# in a venv of its own: its dependencies are not ours.
IRCTEST := build/irctest

.PHONY: run test lint bench clean irctest

$(BIN)/pip:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel

run: $(BIN)/pip
	$(INSTALL) .
	mkdir -p var
	$(BIN)/twistd -n --pidfile var/twistd.pid chat --users var/users.json --audit-log var/server.log --history var/history.sqlite3 --irc-listen tcp:6667 --web-listen tcp:8080 $(ARGS)

test: $(BIN)/pip $(IRCTEST)/.installed
	$(INSTALL) '.[test]'
	$(BIN)/ruff check twisted_chat twisted tests
	$(BIN)/mypy twisted_chat
	$(BIN)/python -m pytest $(ARGS)

clean:
	rm -rf $(VENV) var build *.egg-info

irctest: $(IRCTEST)/.installed

# The irctest 0.1.2 sdist on PyPI lacks the requirements.txt its setup.py
# reads: pip download unpacks it (and fails), --no-clean keeps it, we add
# the file and install from there.
$(IRCTEST)/.installed:
	$(PYTHON) -m venv $(IRCTEST)
	$(IRCTEST)/bin/pip install --quiet limnoria psutil ecdsa pyxmpp2-scram
	rm -rf build/irctest-sdist && mkdir -p build/irctest-sdist
	TMPDIR=$(CURDIR)/build/irctest-sdist $(IRCTEST)/bin/pip download --no-clean \
		--no-deps irctest==0.1.2 -d build/irctest-sdist/dl >/dev/null 2>&1 || true
	src=$$(ls -d build/irctest-sdist/pip-download-*/irctest_*) && \
		printf 'limnoria\npsutil\necdsa\npyxmpp2_scram\n' > "$$src/requirements.txt" && \
		$(IRCTEST)/bin/pip install --quiet "$$src"
	rm -rf build/irctest-sdist
	$(IRCTEST)/bin/python -c "import irctest.cases, irctest.server_tests"
	touch $@
