"""The credit scenario unchanged on the ``evm`` ledger (a real local EVM node, ganache): the nodes
follow the EVM log instead of an orderer, and the result is the same as on the embedded ledger."""

from __future__ import annotations

from pathlib import Path

import pytest

from confide.scenarios.credit_demo import run_credit_demo
from confide.scenarios.evmchain import ganache

pytestmark = pytest.mark.timeout(900)


def test_the_credit_scenario_gives_the_same_scores_on_the_evm_ledger(tmp_path: Path) -> None:
    embedded = run_credit_demo(tmp_path / "embedded", say=lambda _: None, enterprises=600)
    with ganache(tmp_path / "ganache.log") as node:
        chain = {"ledger": "evm", "evm_rpc_url": node.url, "evm_funder_key": node.key}
        evm = run_credit_demo(tmp_path / "evm", say=lambda _: None, enterprises=600, ledger=chain)
        log_txs = int(node.rpc("eth_blockNumber"), 16)
    assert evm.result is not None and evm.provenance_verified
    assert len(set(evm.state_roots.values())) == 1 and len(evm.state_roots) == 3  # every node agrees
    assert evm.result.equals(embedded.result)  # the same scores, row for row
    assert evm.score_summary() == embedded.score_summary()
    assert log_txs > 10  # the txs went through the EVM chain (one chain tx per batch)
    assert not (tmp_path / "evm" / "orderer" / "chain.sqlite").exists()  # no orderer ran
