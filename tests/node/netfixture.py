"""The test network: ``scenarios.localnet`` with three orgs (bank, tax, power)."""

from __future__ import annotations

from pathlib import Path

from confide.node.consortium import OrgEntry
from confide.scenarios.localnet import LocalNetwork, start_local_network

ORGS = (OrgEntry("bank", "Bank"), OrgEntry("tax", "Tax Bureau"), OrgEntry("power", "Power Co."))
Network = LocalNetwork


def start_network(root: Path, database_url: str | None = None) -> LocalNetwork:
    return start_local_network(root, ORGS, chain_id="net-test", database_url=database_url)
