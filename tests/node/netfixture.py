"""The test network: ``scenarios.localnet`` with three orgs (bank, tax, power)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from confide.crypto import Identity
from confide.interfaces import sdk
from confide.interfaces.client import Client
from confide.node.consortium import OrgEntry
from confide.scenarios.localnet import LocalNetwork, start_local_network

ORGS = (OrgEntry("bank", "Bank"), OrgEntry("tax", "Tax Bureau"), OrgEntry("power", "Power Co."))
Network = LocalNetwork


def start_network(root: Path, database_url: str | None = None) -> LocalNetwork:
    return start_local_network(root, ORGS, chain_id="net-test", database_url=database_url)


def owners_and_datasets(
    net: LocalNetwork, datasets: Sequence[tuple[str, str, str, dict[str, Any]]]
) -> tuple[dict[str, Client], Client]:
    """For each ``(org, unit, name, policy)``: a unit, a unit-owner key, and dataset ``org/unit/name``
    registered from ``<org>/data/<name>.csv``; plus a bank analyst. Returns (owners by org, analyst)."""
    owners: dict[str, Client] = {}
    for org, unit, name, policy in datasets:
        admin = net.client(org)
        sdk.create_unit(admin.ledger, admin.identity, unit, unit.title())
        owner = Identity.generate()
        sdk.add_member(
            admin.ledger, admin.identity, owner, name=f"{org} owner", roles=["unit_owner"], unit=unit
        )
        owners[org] = client = Client(net.url(org), owner, ca_bundle=net.bundle)
        source = {"type": "csv", "path": f"{name}.csv"}
        client.register_dataset(org=org, unit=unit, name=name, title=name.title(), source=source, **policy)
    analyst = Identity.generate()
    bank = net.client("bank")
    sdk.add_member(bank.ledger, bank.identity, analyst, name="analyst", roles=["analyst"])
    return owners, Client(net.url("bank"), analyst, ca_bundle=net.bundle)
