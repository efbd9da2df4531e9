# The two entry points of README.md. Everything runs as root on a Debian 12 machine.
SHELL := /bin/bash
VENV  := .venv/bin

.PHONY: setup demo test lint bench lab-up lab-down

setup:
	./scripts/setup

# The main job, end to end on the built-in local lab.
demo: setup
	$(VENV)/msib demo

# The whole test suite (unit tests, then the lab suites sharing one lab); plain pytest: unit only.
test:
	./scripts/test

lint: setup
	$(VENV)/ruff check .
	$(VENV)/mypy
	$(VENV)/ansible-lint --profile production playbooks roles

bench: setup
	$(VENV)/python -m pytest -m bench bench -p no:cacheprovider -s

lab-up: setup
	$(VENV)/msib lab up

lab-down: setup
	$(VENV)/msib lab down
