"""The network demo (``make demo``): three org nodes and an orderer as real processes.

A bank, a tax bureau and a power company each run a node beside their own data
folder. Owners register real files through connectors (the node profiles them;
only schema, row count and digest reach the ledger); the bank's analyst browses
the catalog and a synthetic preview, applies for the tax filings; the tax
bureau approves at two levels; the tax node — the enforcer — allows the granted
columns and refuses an ungranted one. Every node ends with the same state root.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..crypto import Identity
from ..interfaces import sdk
from ..interfaces.client import ApiCallError, Client
from ..node.consortium import OrgEntry
from .credit_data import write_credit_data
from .localnet import LocalNetwork, start_local_network

__all__ = ["NETWORK_ORGS", "NetworkDemo", "create_members", "run_network_demo"]

NETWORK_ORGS = (
    OrgEntry("bank", "Bank of Example (示例银行)", "91350100M000100Y43"),
    OrgEntry("tax", "Municipal Tax Bureau (市税务局)"),
    OrgEntry("power", "City Power Supply Co. (市供电公司)"),
)
DAY_MS = 86_400_000


@dataclass
class NetworkDemo:
    catalog: list[dict[str, Any]] = field(default_factory=list)
    preview: dict[str, Any] = field(default_factory=dict)
    grant: dict[str, Any] = field(default_factory=dict)
    allowed: dict[str, Any] = field(default_factory=dict)
    denied: str = ""
    audit: list[dict[str, Any]] = field(default_factory=list)
    roots: dict[str, str] = field(default_factory=dict)
    registered: dict[str, dict[str, Any]] = field(default_factory=dict)


def create_members(net: LocalNetwork, say: Callable[[str], None]) -> dict[str, Client]:
    people: dict[str, Client] = {}
    for org, unit, title in (
        ("tax", "collection", "Tax Collection Dept."),
        ("power", "service", "Customer Service"),
        ("bank", "credit", "Credit Risk Dept."),
    ):
        admin = net.client(org)
        say(f"[{org}] admin creates unit {unit!r} and a unit-owner key")
        sdk.create_unit(admin.ledger, admin.identity, unit, title)
        owner = Identity.generate()
        owner.save(net.root / org / "keys" / f"{unit}-owner.pem")
        sdk.add_member(
            admin.ledger, admin.identity, owner, name=f"{title} owner", roles=["unit_owner"], unit=unit
        )
        people[f"{org}-owner"] = Client(net.url(org), owner, ca_bundle=net.bundle)
    analyst = Identity.generate()
    analyst.save(net.root / "bank" / "keys" / "analyst.pem")
    bank = net.client("bank")
    sdk.add_member(bank.ledger, bank.identity, analyst, name="Bank credit analyst", roles=["analyst"])
    people["analyst"] = Client(net.url("bank"), analyst, ca_bundle=net.bundle)
    return people


def _register(
    net: LocalNetwork, people: dict[str, Client], say: Callable[[str], None], out: NetworkDemo
) -> None:
    write_credit_data({o: net.root / o / "data" for o in net.orgs})
    jobs = [
        (
            "tax",
            "collection",
            "filings",
            "Annual tax filings",
            {"type": "csv", "path": "filings.csv"},
            ["unit", "org"],
        ),
        (
            "power",
            "service",
            "consumption",
            "Monthly consumption (JSONL)",
            {"type": "jsonl", "path": "consumption.jsonl"},
            ["unit"],
        ),
        ("bank", "credit", "loans", "Loan history", {"type": "csv", "path": "loans.csv"}, ["unit"]),
    ]
    for org, unit, name, title, source, levels in jobs:
        say(f"[{org}] owner registers {source['path']} through the {source['type']} connector")
        r = people[f"{org}-owner"].register_dataset(
            org=org, unit=unit, name=name, title=title, source=source, approval_levels=levels
        )
        out.registered[f"{org}/{unit}/{name}"] = {"block": r.height}


def run_network_demo(workdir: Path, say: Callable[[str], None] = print) -> NetworkDemo:
    out = NetworkDemo()
    net = start_local_network(workdir, NETWORK_ORGS, chain_id="confide-demo", say=say)
    try:
        people = create_members(net, say)
        _register(net, people, say, out)
        analyst = people["analyst"]
        out.catalog = analyst.catalog()
        out.preview = analyst.preview("tax/collection/filings", rows=3)
        say("[bank] analyst applies for tax/collection/filings (tee, 3 uses, 30 days)")
        app = sdk.apply_for(
            analyst.ledger,
            analyst.identity,
            dataset="tax/collection/filings",
            purpose="enterprise credit assessment",
            engines=["tee"],
            max_uses=3,
            columns=["credit_code", "year", "revenue_cny", "overdue_days"],
            expires_at=int(time.time() * 1000) + 30 * DAY_MS,
        ).tx_id
        say("[tax] unit owner approves (level 1 of 2), then the org admin (level 2 of 2)")
        tax_owner, tax_admin = people["tax-owner"], net.client("tax")
        sdk.approve(tax_owner.ledger, tax_owner.identity, app, "unit")
        r = sdk.approve(tax_admin.ledger, tax_admin.identity, app, "org")
        out.grant = analyst.query(f"application/{app}", min_height=r.height)
        enforcer = Client(net.url("tax"), analyst.identity, ca_bundle=net.bundle)
        enforcer.last_height = r.height
        say("[tax node] enforces: granted columns for tee -> allowed; tax_paid_cny -> refused")
        out.allowed = enforcer.check_use(
            dataset="tax/collection/filings", grant=app, engine="tee", columns=["credit_code", "revenue_cny"]
        )
        try:
            enforcer.check_use(
                dataset="tax/collection/filings", grant=app, engine="tee", columns=["tax_paid_cny"]
            )
        except ApiCallError as exc:
            out.denied = exc.message
        net.sync()
        out.audit = analyst.audit()
        out.roots = {o: net.client(o).status()["state_root"] for o in net.orgs}
    finally:
        say("stopping the orderer and the nodes")
        net.stop_all()
    return out
