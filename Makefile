# Confide — every target does its own set-up on a fresh machine.
# Python 3.11: python3.11 if present, else python3 (checked to be 3.11 below).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# SecretFlow SPU (optional PSI engine) in its own venv: it pins numpy<2, Confide does not.
SPU_VENV  := .spu-venv
SPU_STAMP := $(SPU_VENV)/.installed
# ChainMaker's Python SDK (the chainmaker ledger backend's worker, the tests' stand-in node) in its own venv:
# its protos clash with Fabric's; its pysha3 does not build on 3.11 (a shim replaces it: envs/chainmaker).
CHAINMAKER_VENV  := .chainmaker-venv
CHAINMAKER_STAMP := $(CHAINMAKER_VENV)/.installed

# The console's browser-side vendor file (apache-arrow, pinned in console/package-lock.json).
CONSOLE_VENDOR := src/confide/console/static/vendor/arrow.js

# The EVM ledger backend's log contract, compiled by the pinned solc-js, and ganache (a local EVM node
# for the tests); both from chain/evm/package-lock.json.
EVM_ARTIFACT := src/confide/ledger/evm/ConfideLog.json
# The fabric backend's chaincode (fabric-contract-api, pinned in its package-lock.json).
FABRIC_STAMP := chain/fabric/chaincode/node_modules/.installed

.PHONY: demo test lint typecheck unit bench clean help spu-env chainmaker-env console browser screenshots evm etcd fabric

help:
	@echo "make demo   - set up .venv; run the credit scenario across three org nodes (TEE, simulated) on loopback"
	@echo "make test   - set up .venv, run ruff, mypy and the test suite"
	@echo "make bench  - run 'confide bench ledger --txs 20000'"
	@echo "make screenshots - write docs/screenshots/*.png of each console page (headless Chromium)"
	@echo "make evm    - compile the EVM backend's log contract (solc-js) and install ganache (make test does it)"
	@echo "make spu-env - set up .spu-venv (SecretFlow SPU for the spu-rr22/kkrt/ecdh PSI engines; make test does it)"
	@echo "make chainmaker-env - set up .chainmaker-venv (ChainMaker's Python SDK for the chainmaker ledger; make test does it)"

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

$(CHAINMAKER_STAMP): envs/chainmaker/requirements.txt envs/chainmaker/sha3_shim/sha3.py
	@test -x $(CHAINMAKER_VENV)/bin/python || $(PYTHON) -m venv $(CHAINMAKER_VENV)
	$(CHAINMAKER_VENV)/bin/python -m pip install --quiet --upgrade "pip==25.3"
	$(CHAINMAKER_VENV)/bin/python -m pip install --quiet --no-deps -r envs/chainmaker/requirements.txt
	cp envs/chainmaker/sha3_shim/sha3.py "$$($(CHAINMAKER_VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/sha3.py"
	$(CHAINMAKER_VENV)/bin/python -I -c "import sha3, chainmaker.chain_client, chainmaker.protos.api.rpc_node_pb2_grpc, eth.vm.forks.paris, yaml" || { echo "error: ChainMaker's SDK does not import in $(CHAINMAKER_VENV); see the lines above"; exit 1; }
	@touch $(CHAINMAKER_STAMP)

chainmaker-env: $(CHAINMAKER_STAMP)

$(CONSOLE_VENDOR): console/package.json console/package-lock.json
	@command -v npm >/dev/null || { echo "error: npm is needed to fetch the console's apache-arrow; install Node.js (Debian: apt-get install nodejs npm)"; exit 1; }
	cd console && npm ci --no-audit --no-fund --loglevel=error
	@mkdir -p $(dir $(CONSOLE_VENDOR))
	cp console/node_modules/apache-arrow/Arrow.es2015.min.js $(CONSOLE_VENDOR)

console: $(CONSOLE_VENDOR)

$(EVM_ARTIFACT): chain/evm/package.json chain/evm/package-lock.json chain/evm/ConfideLog.sol chain/evm/compile.mjs
	@command -v npm >/dev/null || { echo "error: npm is needed for the EVM tools (solc-js, ganache); install Node.js (Debian: apt-get install nodejs npm)"; exit 1; }
	cd chain/evm && npm ci --no-audit --no-fund --loglevel=error
	node chain/evm/compile.mjs $(EVM_ARTIFACT)

evm: $(EVM_ARTIFACT)

$(FABRIC_STAMP): chain/fabric/chaincode/package.json chain/fabric/chaincode/package-lock.json
	@command -v npm >/dev/null || { echo "error: npm is needed for the Fabric chaincode's tests; install Node.js (Debian: apt-get install nodejs npm)"; exit 1; }
	cd chain/fabric/chaincode && npm ci --no-audit --no-fund --loglevel=error
	@touch $(FABRIC_STAMP)

fabric: $(FABRIC_STAMP)

browser:
	@scripts/install-browser.sh

etcd:
	@scripts/install-etcd.sh

demo: $(STAMP) $(CONSOLE_VENDOR)
	$(BIN)/confide demo credit --workdir .demo

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) $(SPU_STAMP) $(CHAINMAKER_STAMP) $(CONSOLE_VENDOR) $(EVM_ARTIFACT) $(FABRIC_STAMP) browser etcd
	pg="$$(scripts/test-postgres.sh)" && eval "$$pg" && $(BIN)/pytest -q

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/confide bench ledger --txs 20000

screenshots: $(STAMP) $(CONSOLE_VENDOR) browser
	$(BIN)/python -m confide.console.screenshots --out docs/screenshots

clean:
	rm -rf $(VENV) $(SPU_VENV) .demo .pytest_cache .mypy_cache .ruff_cache console/node_modules $(CONSOLE_VENDOR) chain/evm/node_modules $(EVM_ARTIFACT) chain/fabric/chaincode/node_modules
