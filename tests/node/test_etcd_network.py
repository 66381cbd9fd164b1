"""Org nodes (processes) on an etcd-ordered ledger: a node whose own etcd member is down keeps
submitting and reading through the other members; when the member is back, every node reports the
same state root."""

from __future__ import annotations

from pathlib import Path

import pytest

from confide.interfaces import sdk
from confide.node.consortium import OrgEntry
from confide.scenarios.etcdcluster import etcd_cluster
from confide.scenarios.localnet import start_local_network

pytestmark = pytest.mark.timeout(300)
ORGS = (OrgEntry("bank", "Bank"), OrgEntry("tax", "Tax Bureau"), OrgEntry("power", "Power Co."))


def test_a_node_keeps_working_while_its_own_member_is_down(tmp_path: Path) -> None:
    with etcd_cluster(tmp_path / "etcd") as cluster:
        net = start_local_network(
            tmp_path / "c", ORGS, chain_id="etcd-net", ledger="etcd", etcd_endpoints=cluster.urls
        )
        try:
            bank = net.client("bank")
            sdk.create_unit(bank.ledger, bank.identity, "before", "Before")
            cluster.stop(0)  # the bank's own member
            sdk.create_unit(bank.ledger, bank.identity, "during", "During")  # via the other members
            tax = net.client("tax")
            sdk.create_unit(tax.ledger, tax.identity, "audit", "Audit")
            cluster.start(0)
            cluster.wait_healthy(0)
            net.sync()
            roots = {o: net.health(o)["state_root"] for o in net.orgs}
            assert len(set(roots.values())) == 1, roots
            assert {u["id"] for o in bank.query("catalog") for u in o["units"]} >= {
                "before",
                "during",
                "audit",
            }
            assert not (tmp_path / "c" / "orderer" / "chain.sqlite").exists()  # no orderer process
        finally:
            net.stop_all()
