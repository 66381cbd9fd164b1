"""The credit scenario unchanged on the derived-chain ledgers: ``evm`` (a real local EVM node,
ganache), ``etcd`` (a three-member etcd cluster), ``fabric`` and ``chainmaker`` (their stand-ins). The nodes
follow the log instead of an orderer, and the result is the same as on the embedded ledger."""

from __future__ import annotations

from pathlib import Path

import pytest

from confide.ledger.chainmaker.log import ChainMakerLog
from confide.ledger.fabric.log import FabricLog
from confide.node.consortium import FabricOrg
from confide.scenarios.chainmakerchain import chainmaker_standin
from confide.scenarios.credit_demo import CreditDemo, run_credit_demo
from confide.scenarios.etcdcluster import etcd_cluster
from confide.scenarios.evmchain import ganache
from confide.scenarios.fabricnet import fabric_network

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


def test_the_credit_scenario_gives_the_same_scores_on_the_fabric_ledger(
    embedded: CreditDemo, tmp_path: Path
) -> None:
    """Through the Fabric Gateway stand-in (over TLS), which runs the real chaincode
    (docs/ledger-fabric.md)."""
    msps = ["BankMSP", "TaxMSP", "PowerMSP"]
    with fabric_network(tmp_path / "fabric", msps, chaincodes=["confide-log"], tls=True) as net:
        orgs = [FabricOrg(net.endpoint, m, *net.clients[m], net.tls_root) for m in msps]
        out = run_credit_demo(
            tmp_path / "c",
            say=lambda _: None,
            enterprises=600,
            ledger={"ledger": "fabric", "fabric_orgs": orgs},
        )
        log = FabricLog(net.gateway("BankMSP", "confide-log"))
        assert log.count() >= 13  # the txs went through the channel
    _same(out, embedded, tmp_path / "c")


def test_the_credit_scenario_gives_the_same_scores_on_the_chainmaker_ledger(
    embedded: CreditDemo, tmp_path: Path
) -> None:
    """Through ChainMaker's official SDK against the stand-in node (docs/ledger-chainmaker.md)."""
    orgs = ["bank.confide.local", "tax.confide.local", "power.confide.local"]
    with chainmaker_standin(tmp_path / "cm", orgs=orgs) as net:
        chain = {
            "ledger": "chainmaker",
            "chainmaker_configs": [net.sdk_config(i) for i in range(3)],
            "chainmaker_admin_config": net.admin_config,
            "chainmaker_chain_id": net.chain_id,
        }
        out = run_credit_demo(tmp_path / "c", say=lambda _: None, enterprises=600, ledger=chain)
        log = ChainMakerLog(net.sdk_config(0), "confide_log")
        assert log.head() > 10  # the txs went through the chain's blocks
        log.close()
    _same(out, embedded, tmp_path / "c")
