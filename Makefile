.PHONY: run test lint typecheck bench clean dist deb

# Quick start: run the app (the tray app and its manager window) and the full test suite.
run: .venv/.installed
	.venv/bin/wgdesk

test:
	scripts/run-tests

# What every target that uses .venv needs: the system packages and the venv (scripts/install-test-deps),
# again whenever the dependency lists change.
.venv/.installed: pyproject.toml scripts/install-test-deps
	scripts/install-test-deps

lint: .venv/.installed
	.venv/bin/ruff check wgdesk tests benchmarks
	.venv/bin/mypy wgdesk/proto wgdesk/config

bench: .venv/.installed
	.venv/bin/python benchmarks/proto_micro.py

# Packaging (build.spec, installers/): `make dist` builds the one-folder bundle $(DIST)/wgdesk with the four
# executables; `make deb` packages it as $(DIST)/wgdesk_VERSION_amd64.deb.
DIST ?= dist
WORK ?= build/pyinstaller

dist: .venv/.installed
	.venv/bin/pyinstaller --noconfirm --clean --log-level WARN --distpath $(DIST) --workpath $(WORK) build.spec

deb: dist
	installers/linux/build-deb $(DIST)/wgdesk $(DIST)

clean:
	rm -rf build dist .pytest_cache .mypy_cache .ruff_cache
