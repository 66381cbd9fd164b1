"""The Fabric chaincode's own unit tests (``chain/fabric/chaincode``, fabric-contract-api from npm,
installed by ``make fabric``), run with Node's test runner; and the chaincode loads."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

CHAINCODE = Path(__file__).resolve().parents[2] / "chain" / "fabric" / "chaincode"


def test_the_chaincode_unit_tests_pass() -> None:
    assert (CHAINCODE / "node_modules" / "fabric-contract-api").exists(), "run 'make fabric'"
    node = shutil.which("node")
    assert node is not None
    out = subprocess.run(
        [node, "--test", "test/"], cwd=CHAINCODE, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "# pass 3" in out.stdout and "# fail 0" in out.stdout


def test_the_chaincode_loads_with_the_contract_api() -> None:
    node = shutil.which("node")
    assert node is not None
    code = "const m = require('./index.js'); console.log(m.contracts.map((c) => new c().getName()).join())"
    out = subprocess.run(
        [node, "-e", code], cwd=CHAINCODE, capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "ConfideLog"
