# `make run` and `make test` do all the set-up on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app app
HOST ?= 127.0.0.1
PORT ?= 5000

NODE_TOOLS := tests/typescript/node_modules/.installed

.PHONY: install migrate run test test-galera lint format clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

migrate: install
	$(FLASK) db upgrade

run: migrate
	$(FLASK) seed-demo --if-empty
	$(FLASK) run --host $(HOST) --port $(PORT)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# openapi-typescript and tsc for tests/test_typed_clients.py, at the versions of the lock file.
$(NODE_TOOLS): tests/typescript/package-lock.json
	cd tests/typescript && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# pytest exits 5 when it collected no test: that is a broken suite, not a pass.
test: lint $(NODE_TOOLS)
	@$(BIN)/python -m pytest $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests: failing the run"; exit 1; fi; \
	exit $$status

# The race suite on a three-node Galera cluster (scripts/galera_cluster.sh), one gunicorn per
# node, and the migrations under Galera's rules: not part of `make test` (README "Running on
# several machines"). The cluster is stopped afterwards unless GALERA_KEEP=1.
GALERA_DATABASE ?= exam_shop_test_galera
GALERA_SQL_PORTS ?= 3307 3308 3309
GALERA_URLS = $(subst $(eval) ,$(comma),$(foreach port,$(GALERA_SQL_PORTS),mysql+pymysql://root@127.0.0.1:$(port)/$(GALERA_DATABASE)))
comma := ,

test-galera: install
	GALERA_SQL_PORTS="$(GALERA_SQL_PORTS)" scripts/galera_cluster.sh start
	@REQUIRE_MARIADB=1 TEST_MARIADB_URL="mysql+pymysql://root@127.0.0.1:$(firstword $(GALERA_SQL_PORTS))/$(GALERA_DATABASE)" \
	TEST_GALERA_URLS="$(GALERA_URLS)" \
	$(BIN)/python -m pytest tests/test_galera.py tests/test_races_*.py "tests/test_migrations.py" -k "not sqlite" $(PYTEST_ARGS); status=$$?; \
	if [ "$(GALERA_KEEP)" != 1 ]; then GALERA_SQL_PORTS="$(GALERA_SQL_PORTS)" scripts/galera_cluster.sh stop; fi; \
	exit $$status

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache instance tests/typescript/node_modules
