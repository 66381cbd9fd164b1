"""The test network: ``scenarios.localnet`` with three orgs (bank, tax, power)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from confide.crypto import Identity
from confide.interfaces import sdk
from confide.interfaces.client import Client
from confide.node.consortium import OrgEntry
from confide.scenarios.localnet import LocalNetwork, start_local_network

ORGS = (OrgEntry("bank", "Bank"), OrgEntry("tax", "Tax Bureau"), OrgEntry("power", "Power Co."))
Network = LocalNetwork
DAY_MS = 86_400_000


def start_network(root: Path, database_url: str | None = None) -> LocalNetwork:
    return start_local_network(root, ORGS, chain_id="net-test", database_url=database_url)


@contextmanager
def env_var(name: str, value: str) -> Iterator[None]:
    """``name=value`` in this process's environment (so node processes started inside inherit it),
    restored afterwards."""
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name)
        else:
            os.environ[name] = old


def start_network_logging_wire(root: Path) -> LocalNetwork:
    """A network whose nodes' PSI/MPC inboxes append every message they accept to
    ``root.parent / "wire.bin"`` (``CONFIDE_PSI_WIRE_LOG``), for the canary tests."""
    with env_var("CONFIDE_PSI_WIRE_LOG", str(root.parent / "wire.bin")):
        return start_network(root)


def receiving_side(net: LocalNetwork, org: str) -> list[Path]:
    """What a canary must never reach: every file in ``org``'s node folder and the orderer's, their
    logs, every node's copy of the ledger, and the wire log."""
    places = [p for p in (net.root / org).rglob("*") if p.is_file()]
    places += [p for p in (net.root / "orderer").rglob("*") if p.is_file()]
    places += [net.root / f"{o}.log" for o in (org, "orderer")]
    places += [net.root / o / "node.sqlite" for o in net.orgs]
    return [*places, net.root.parent / "wire.bin"]


def assert_absent(canaries: Sequence[bytes], places: Sequence[Path]) -> None:
    for path in places:
        data = path.read_bytes()
        for canary in canaries:
            assert canary not in data, f"{canary[:40]!r} found in {path}"


def grant(
    analyst: Client,
    owner: Client,
    dataset: str,
    *,
    columns: list[str],
    engines: list[str],
    purpose: str,
    max_uses: int = 20,
) -> str:
    """The analyst applies for ``dataset`` (a day long) and its unit owner approves; the grant id."""
    app = sdk.apply_for(
        analyst.ledger,
        analyst.identity,
        dataset=dataset,
        purpose=purpose,
        columns=columns,
        engines=engines,
        max_uses=max_uses,
        expires_at=int(time.time() * 1000) + DAY_MS,
    ).tx_id
    sdk.approve(owner.ledger, owner.identity, app, "unit")
    return app


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
