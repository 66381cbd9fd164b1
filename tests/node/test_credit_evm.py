"""The credit scenario unchanged on the derived-chain ledgers: ``evm`` (a real local EVM node,
ganache) and ``etcd`` (a three-member etcd cluster). The nodes follow the log instead of an
orderer, and the result is the same as on the embedded ledger."""

from __future__ import annotations

from pathlib import Path

import pytest

from confide.scenarios.credit_demo import CreditDemo, run_credit_demo
from confide.scenarios.etcdcluster import etcd_cluster
from confide.scenarios.evmchain import ganache

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> CreditDemo:
    return run_credit_demo(tmp_path_factory.mktemp("embedded") / "c", say=lambda _: None, enterprises=600)


def _same(out: CreditDemo, embedded: CreditDemo, root: Path) -> None:
    assert out.result is not None and out.provenance_verified
    assert len(set(out.state_roots.values())) == 1 and len(out.state_roots) == 3  # every node agrees
    assert out.result.equals(embedded.result)  # the same scores, row for row
    assert out.score_summary() == embedded.score_summary()
    assert not (root / "orderer" / "chain.sqlite").exists()  # no orderer ran


def test_the_credit_scenario_gives_the_same_scores_on_the_evm_ledger(
    embedded: CreditDemo, tmp_path: Path
) -> None:
    with ganache(tmp_path / "ganache.log") as node:
        chain = {"ledger": "evm", "evm_rpc_url": node.url, "evm_funder_key": node.key}
        evm = run_credit_demo(tmp_path / "evm", say=lambda _: None, enterprises=600, ledger=chain)
        assert int(node.rpc("eth_blockNumber"), 16) > 10  # the txs went through the EVM chain
    _same(evm, embedded, tmp_path / "evm")


def test_the_credit_scenario_gives_the_same_scores_on_the_etcd_ledger(
    embedded: CreditDemo, tmp_path: Path
) -> None:
    with etcd_cluster(tmp_path / "etcd") as cluster:
        chain = {"ledger": "etcd", "etcd_endpoints": cluster.urls}
        out = run_credit_demo(tmp_path / "c", say=lambda _: None, enterprises=600, ledger=chain)
    _same(out, embedded, tmp_path / "c")
