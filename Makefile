# Two commands for a new machine: `make run` (the console with demo data) and `make test` (the suite).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | sha1sum | cut -c1-12)
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=
BANK_SECONDS ?= 60
BANK_CLIENTS ?= 16

.PHONY: run test install migrate demo check-ledger bank clean

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

install: $(STAMP)

migrate: $(STAMP)
	$(BIN)/python manage.py migrate --noinput

demo: migrate
	$(BIN)/python manage.py seed_demo --if-empty

run: demo
	@echo "Serving the console on http://$(HOST):$(PORT)/ (Ctrl-C stops it)"
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

test: $(STAMP)
	@sh scripts/ensure_chromium.sh || true
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Bank test (issue 5): 16 HTTP clients against gunicorn on a scratch PostgreSQL database, with faults.
bank: $(STAMP)
	@sh scripts/ensure_postgres.sh
	$(BIN)/python bench/bank.py --seconds $(BANK_SECONDS) --clients $(BANK_CLIENTS) --faults

check-ledger: $(STAMP)
	$(BIN)/python manage.py check_ledger

clean:
	rm -rf $(VENV) db.sqlite3 db.sqlite3-* staticfiles .pytest_cache
