# Developer entry points. Everything runs from a project-local virtualenv (.venv) that these targets
# create; `make run` needs nothing but Python 3.11, `make test` also installs a few Debian packages.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Two pytest-xdist workers (each gets its own test database, Dovecot and Celery worker).
PYTEST_ARGS ?= -n 2
ARGS ?=

.PHONY: venv run test test-fast system-deps lint format check-deploy compose-check bench load explain clean

venv: $(STAMP)

# Re-installs only when pyproject.toml changes (or the venv is missing).
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(PY) -m crm.devtools.run $(ARGS)

system-deps:
	@bash crm/devtools/system-deps.sh

test: $(STAMP) system-deps
	EMAILSYNC_ALLOW_PRIVATE_HOSTS=1 $(PY) -m crm.devtools.services -- $(PY) -m pytest $(PYTEST_ARGS) $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/bandit -c pyproject.toml -r crm activities contactcenter emailsync bench -q

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Production settings with throw-away secrets: fails on any deploy warning.
check-deploy: $(STAMP)
	DJANGO_ENV=production \
	SECRET_KEY="$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(64))')" \
	FIELD_ENCRYPTION_KEYS="$$($(PY) -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')" \
	ALLOWED_HOSTS=crm.example.com \
	$(PY) manage.py check --deploy --fail-level WARNING

# docker-compose.yml validated offline (no Docker engine needed) with throw-away secrets, by the Debian
# package docker-compose (make system-deps installs it) or else the compose v2 plugin.
compose-check:
	@if command -v docker-compose >/dev/null 2>&1; then set -- docker-compose; \
	elif docker compose version >/dev/null 2>&1; then set -- docker compose; \
	else echo "compose-check needs docker-compose: apt-get install docker-compose (or make system-deps)" >&2; exit 1; fi; \
	POSTGRES_PASSWORD=throwaway APP_DB_PASSWORD=throwaway SECRET_KEY=throwaway FIELD_ENCRYPTION_KEYS=throwaway \
	"$$@" -f docker-compose.yml config -q && echo "docker-compose.yml is valid"

bench: $(STAMP)
	$(PY) -m crm.devtools.services -- $(PY) -m bench.run $(ARGS)

# Sustained request rate of gunicorn on the bench data under a locust mix (bench/load.py).
load: $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,load]'
	$(PY) -m crm.devtools.services -- $(PY) -m bench.load $(ARGS)

# EXPLAIN of every hot query (tenant-first?) and a partitioned-by-month copy's plans (bench/explain.py).
explain: $(STAMP)
	$(PY) -m crm.devtools.services -- $(PY) -m bench.explain $(ARGS)

clean:
	rm -rf var/staticfiles test-artifacts
