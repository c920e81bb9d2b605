.DEFAULT_GOAL := help
PY := .venv/bin/python

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

run: ## start everything on embedded defaults (Postgres, migrations, API on :8000)
	@./scripts/bootstrap.sh && $(PY) -m api.ops.dev

test: ## the full test suite (installs what it needs, Chromium included)
	@./scripts/bootstrap.sh --browser && $(PY) -m pytest

lint: ## ruff and mypy
	@./scripts/bootstrap.sh && .venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy

release: ## run the release step (migrate forwards under an advisory lock)
	@./scripts/bootstrap.sh && $(PY) -m api.ops.release

migrations: ## generate a migration from changed table classes
	@./scripts/bootstrap.sh && .venv/bin/piccolo migrations new marketedge --auto

screenshots: ## refresh the admin's pictures in docs/ (not part of the test suite)
	@./scripts/bootstrap.sh --browser && $(PY) -m tests.support.screenshots

bench: ## every benchmark, one table
	@./scripts/bootstrap.sh && $(PY) -m bench

.PHONY: help run test lint release migrations screenshots bench
