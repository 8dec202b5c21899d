.PHONY: run test lint typecheck bench clean

# Quick start: run the app (until the GUI lands: the CLI) and the full test suite.
run:
	scripts/install-test-deps
	.venv/bin/wgdeskctl --help

test:
	scripts/run-tests

lint:
	.venv/bin/ruff check wgdesk tests benchmarks
	.venv/bin/mypy wgdesk/proto

bench:
	.venv/bin/python benchmarks/proto_micro.py

clean:
	rm -rf build dist .pytest_cache .mypy_cache .ruff_cache
