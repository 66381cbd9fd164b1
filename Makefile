# Confide — every target does its own set-up on a fresh machine.
# Python 3.11: python3.11 if present, else python3 (checked to be 3.11 below).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# SecretFlow SPU (optional PSI engine) in its own venv: it pins numpy<2, Confide does not.
SPU_VENV  := .spu-venv
SPU_STAMP := $(SPU_VENV)/.installed

.PHONY: demo test lint typecheck unit bench clean help spu-env

help:
	@echo "make demo   - set up .venv; run the credit scenario across three org nodes (TEE, simulated) on loopback"
	@echo "make test   - set up .venv, run ruff, mypy and the test suite"
	@echo "make bench  - run 'confide bench ledger --txs 20000'"
	@echo "make spu-env - set up .spu-venv (SecretFlow SPU for the spu-rr22/kkrt/ecdh PSI engines; make test does it)"

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null || { echo "error: Confide needs Python 3.11 ('$(PYTHON)' is not); install it or run 'make PYTHON=/path/to/python3.11'"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==25.3"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,gm]"
	@touch $(STAMP)

$(SPU_STAMP): envs/spu/requirements.txt
	@test -x $(SPU_VENV)/bin/python || $(PYTHON) -m venv $(SPU_VENV)
	$(SPU_VENV)/bin/python -m pip install --quiet --upgrade "pip==25.3"
	$(SPU_VENV)/bin/python -m pip install --quiet --no-deps -r envs/spu/requirements.txt
	$(SPU_VENV)/bin/python -I -c "import spu.psi, spu.libspu" || { echo "error: SPU does not import in $(SPU_VENV); see the lines above"; exit 1; }
	@touch $(SPU_STAMP)

spu-env: $(SPU_STAMP)

demo: $(STAMP)
	$(BIN)/confide demo credit --workdir .demo

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) $(SPU_STAMP)
	pg="$$(scripts/test-postgres.sh)" && eval "$$pg" && $(BIN)/pytest -q

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/confide bench ledger --txs 20000

clean:
	rm -rf $(VENV) $(SPU_VENV) .demo .pytest_cache .mypy_cache .ruff_cache
