"""Test factories: a ready consortium on an in-memory (or file) embedded chain.

Time is injected (``FakeClock``), so expiry and windows are tested without sleeping.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confide.crypto import Identity
from confide.ledger import Genesis, Receipt, SignedTx, TxRefused, build_tx
from confide.ledger.embedded import EmbeddedBackend

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z in ms
DAY = 86_400_000
SCHEMA = [
    {"name": "credit_code", "type": "string", "nullable": False, "description": ""},
    {"name": "year", "type": "int32", "nullable": False, "description": ""},
    {"name": "revenue", "type": "int64", "nullable": True, "description": ""},
    {"name": "secret_notes", "type": "string", "nullable": True, "description": ""},
]


@dataclass
class FakeClock:
    now: int = T0 + 1000

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms


def digest(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


def make_genesis(orgs: tuple[str, ...] = ("bank", "tax", "power"), suite: str = "default", **params: Any):
    orderer = Identity.generate(suite)
    admins = {o: Identity.generate(suite) for o in orgs}
    g = Genesis.model_validate(
        {
            "chain_id": "test-chain",
            "name": "Test consortium",
            "suite": suite,
            "genesis_time": T0,
            "orderer_public_key": orderer.public_hex,
            "orgs": [{"id": o, "name": o.title(), "admin_public_key": admins[o].public_hex} for o in orgs],
            "params": params,
        }
    )
    return g, orderer, admins


@dataclass
class Consortium:
    """bank / tax / power, each with a unit, a unit owner and (bank) an analyst."""

    genesis: Genesis
    orderer: Identity
    admins: dict[str, Identity]
    chain: EmbeddedBackend
    clock: FakeClock
    owners: dict[str, Identity] = field(default_factory=dict)
    analyst: Identity | None = None

    @classmethod
    def create(cls, path: str | Path = ":memory:", suite: str = "default", **params: Any) -> Consortium:
        g, orderer, admins = make_genesis(suite=suite, **params)
        clock = FakeClock()
        chain = EmbeddedBackend(genesis=g, orderer_identity=orderer, path=path, clock=clock)
        c = cls(g, orderer, admins, chain, clock)
        for org, unit in (("bank", "credit"), ("tax", "collection"), ("power", "service")):
            c.send(admins[org], "unit.create", {"unit": unit, "name": unit.title()})
            owner = Identity.generate(suite)
            c.send(
                admins[org],
                "member.add",
                {
                    "public_key": owner.public_hex,
                    "name": f"{org} owner",
                    "roles": ["unit_owner"],
                    "unit": unit,
                },
            )
            c.owners[org] = owner
        c.analyst = Identity.generate(suite)
        c.send(
            admins["bank"],
            "member.add",
            {"public_key": c.analyst.public_hex, "name": "analyst", "roles": ["analyst"]},
        )
        return c

    # -- tx helpers ------------------------------------------------------------
    def tx(self, who: Identity, tx_type: str, payload: dict[str, Any], **kw: Any) -> SignedTx:
        kw.setdefault("created_at", self.clock.now)
        return build_tx(who, self.genesis.chain_id, tx_type, payload, **kw)

    def send(self, who: Identity, tx_type: str, payload: dict[str, Any], **kw: Any) -> Receipt:
        r = self.chain.submit(self.tx(who, tx_type, payload, **kw))
        assert r.code == 0, r
        return r

    def refused(self, who: Identity, tx_type: str, payload: dict[str, Any], **kw: Any) -> TxRefused:
        """Submit expecting refusal; assert the state root did not move."""
        before = self.root()
        height = self.chain.head().height
        try:
            self.chain.submit(self.tx(who, tx_type, payload, **kw))
        except TxRefused as exc:
            assert self.root() == before, "a refused tx changed state"
            assert self.chain.head().height == height, "a refused tx produced a block"
            return exc
        raise AssertionError(f"{tx_type} was accepted but should have been refused")

    def root(self) -> str:
        return self.chain.db.state_root(self.genesis.crypto)

    def query(self, path: str) -> Any:
        r = self.chain.orderer.replica
        return r.contract.query(r.state, path, self.clock.now)

    # -- scenario helpers ------------------------------------------------------
    def register_tax_dataset(
        self, name: str = "filings", levels: list[str] | None = None, **over: Any
    ) -> str:
        payload = {
            "unit": "collection",
            "name": name,
            "title": "Tax filings",
            "kind": "table",
            "schema": SCHEMA,
            "row_count": 1000,
            "content_digest": digest(f"{name} v1"),
            "approval_levels": levels or ["unit"],
        }
        payload.update(over)
        self.send(self.owners["tax"], "dataset.register", payload)
        return f"tax/collection/{name}"

    def apply(self, dataset: str, who: Identity | None = None, **over: Any) -> str:
        payload = {
            "dataset": dataset,
            "purpose": "credit scoring",
            "columns": ["credit_code", "revenue"],
            "engines": ["tee"],
            "expires_at": self.clock.now + 30 * DAY,
            "max_uses": 2,
        }
        payload.update(over)
        return self.send(who or self.analyst, "application.submit", payload).tx_id

    def grant(self, dataset: str | None = None, **over: Any) -> tuple[str, str]:
        ds = dataset or self.register_tax_dataset()
        app = self.apply(ds, **over)
        self.send(self.owners["tax"], "application.approve", {"application": app, "level": "unit"})
        return ds, app


# A structurally valid tee attestation for contract-level tests (the contract checks its shape and
# binds the run to it; quotes and signatures are verified by the nodes, tested in tests/node).
ATTESTATION = {
    "tee_type": "simulated",
    "quote": (digest("a quote") * 14)[:896],
    "channel_pub": digest("channel key"),
    "result_pub": digest("result key"),
    "block_hash": digest("a block"),
    "host_org": "bank",
}
