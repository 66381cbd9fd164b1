"""Replica determinism: the same orderer-signed blocks give the same state on every replica.

Blocks here come from a *permissive* block builder, not from the solo orderer: like an EVM chain it
orders every tx it is handed, valid or not, and signs the header with the genesis orderer key. Replicas
must then agree, block by block, on the state root and on every tx's result code, and each invalid tx
must be recorded with its non-zero code. The only tx the embedded replica refuses to carry is one whose
signature does not verify: the whole block is refused (tested separately). A deterministic test checks
that the orderer path (which refuses invalid txs before ordering) and a replica fed its blocks agree.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from confide.crypto import Identity
from confide.ledger import Block, BlockHeader, ChainCorrupted, Code, Receipt, SignedTx, TxRefused, build_tx
from confide.ledger.block import BLOCK_DOMAIN, ZERO_HASH, tx_root
from confide.ledger.embedded import ChainDB, Replica, verify_chain
from confide.ledger.tx import TX_DOMAIN
from factories import ATTESTATION, DAY, SCHEMA, T0, Consortium, digest, make_genesis

GENESIS, ORDERER, ADMINS = make_genesis()
SUITE = GENESIS.crypto
CHAIN = GENESIS.chain_id
UNITS = {"bank": "credit", "tax": "collection", "power": "service"}
OWNERS = {org: Identity.generate() for org in UNITS}
ANALYST = Identity.generate()
OUTSIDER = Identity.generate()  # never a member
SPARES = [Identity.generate() for _ in range(3)]  # keys that member.add ops may register
FILINGS = "tax/collection/filings"  # approval levels unit, then org
CONSUMPTION = "power/service/consumption"  # approval level unit
WINDOW = GENESIS.params.tx_window_ms
SKEW = GENESIS.params.max_clock_skew_ms


# -- a permissive block builder --------------------------------------------------------------------------


@dataclass
class BlockBuilder:
    """Orders every tx it is given into a block signed by the genesis orderer key."""

    height: int = -1
    prev_hash: str = ZERO_HASH

    def _seal(self, header: BlockHeader, txs: tuple[SignedTx, ...]) -> Block:
        raw = header.encode()
        block = Block(raw, ORDERER.sign(BLOCK_DOMAIN + raw), txs)
        self.height, self.prev_hash = header.height, block.block_hash(SUITE)
        return block

    def genesis(self) -> Block:
        header = BlockHeader(
            chain=CHAIN,
            height=0,
            prev_hash=ZERO_HASH,
            tx_root=tx_root(SUITE, []),
            tx_count=0,
            time=GENESIS.genesis_time,
            orderer=ORDERER.key_id,
            genesis=GENESIS.digest(),
        )
        return self._seal(header, ())

    def block(self, txs: Sequence[SignedTx], time: int) -> Block:
        header = BlockHeader(
            chain=CHAIN,
            height=self.height + 1,
            prev_hash=self.prev_hash,
            tx_root=tx_root(SUITE, list(txs)),
            tx_count=len(txs),
            time=time,
            orderer=ORDERER.key_id,
        )
        return self._seal(header, tuple(txs))


def _forge_signature(stx: SignedTx) -> SignedTx:
    sig = bytearray(stx.signature)
    sig[0] ^= 0x01
    return SignedTx(stx.body, bytes(sig))


# -- a tx stream: valid txs mixed with invalid ones -----------------------------------------------------

VALID_KINDS = (
    "unit.create",
    "member.add",
    "dataset.register",
    "application.submit",
    "application.approve",
    "application.reject",
    "application.revoke",
    "task.submit",
    "run.start",
    "grant_and_run",
)
INVALID_KINDS = (
    "wrong_signer",
    "unknown_dataset",
    "double_approval",
    "malformed_payload",
    "malformed_body",
    "replay",
    "stale",
    "future",
    "wrong_chain",
    "unknown_type",
    "unknown_signer",
)


class Choices:
    """Deterministic picks from one drawn integer."""

    def __init__(self, seed: int) -> None:
        self.k = seed

    def pick(self, seq: Sequence[Any]) -> Any:
        i, self.k = self.k % len(seq), self.k // len(seq)
        return seq[i]


@dataclass
class Stream:
    """Builds signed txs for ops; remembers what was sent so later ops can refer to it."""

    nonce: int = 0
    sent: list[SignedTx] = field(default_factory=list)  # replayable: right chain, decodable body
    apps: list[tuple[str, str]] = field(default_factory=list)  # (application tx id, dataset)
    tasks: list[tuple[str, str]] = field(default_factory=list)  # (task tx id, dataset)

    def tx(
        self,
        who: Identity,
        tx_type: str,
        payload: dict[str, Any],
        time: int,
        *,
        chain: str = CHAIN,
        created_at: int | None = None,
    ) -> SignedTx:
        self.nonce += 1
        stx = build_tx(
            who,
            chain,
            tx_type,
            payload,
            nonce=f"{self.nonce:032x}",
            created_at=time if created_at is None else created_at,
        )
        if chain == CHAIN:
            self.sent.append(stx)
        return stx

    # payloads
    def _register(self, org: str, unit: str, name: str, levels: list[str]) -> dict[str, Any]:
        return {
            "unit": unit,
            "name": name,
            "title": name.title(),
            "kind": "table",
            "schema": SCHEMA,
            "row_count": 1000,
            "content_digest": digest(f"{org}/{unit}/{name} v1"),
            "approval_levels": levels,
        }

    def _apply(self, who: Identity, dataset: str, time: int, max_uses: int = 2) -> SignedTx:
        payload = {
            "dataset": dataset,
            "purpose": "credit scoring",
            "columns": ["credit_code", "revenue"],
            "engines": ["tee"],
            "expires_at": time + 30 * DAY,
            "max_uses": max_uses,
        }
        stx = self.tx(who, "application.submit", payload, time)
        self.apps.append((stx.tx_id(SUITE), dataset))
        return stx

    def _decide(self, who: Identity, kind: str, app: str, level: str, time: int) -> SignedTx:
        return self.tx(who, kind, {"application": app, "level": level}, time)

    def _task(self, app: str, dataset: str, time: int) -> SignedTx:
        payload = {
            "engine": "tee",
            "inputs": [{"dataset": dataset, "grant": app, "columns": ["credit_code"]}],
            "code_digest": digest("model code"),
            "code": "model code",
        }
        stx = self.tx(ANALYST, "task.submit", payload, time)
        self.tasks.append((stx.tx_id(SUITE), dataset))
        return stx

    def _run(self, task: str, dataset: str, time: int) -> SignedTx:
        return self.tx(
            ANALYST,
            "run.start",
            {"attestation": ATTESTATION, "task": task, "input_digests": [digest(f"{dataset} v1")]},
            time,
        )

    def bootstrap(self, time: int) -> list[SignedTx]:
        """Units, owners, the analyst and two datasets; every tx valid."""
        txs = []
        for org, unit in UNITS.items():
            txs.append(self.tx(ADMINS[org], "unit.create", {"unit": unit, "name": unit.title()}, time))
            add = {"public_key": OWNERS[org].public_hex, "name": f"{org} owner", "roles": ["unit_owner"]}
            txs.append(self.tx(ADMINS[org], "member.add", {**add, "unit": unit}, time))
        add = {"public_key": ANALYST.public_hex, "name": "analyst", "roles": ["analyst"]}
        txs.append(self.tx(ADMINS["bank"], "member.add", add, time))
        reg = self._register("tax", "collection", "filings", ["unit", "org"])
        txs.append(self.tx(OWNERS["tax"], "dataset.register", reg, time))
        reg = self._register("power", "service", "consumption", ["unit"])
        txs.append(self.tx(OWNERS["power"], "dataset.register", reg, time))
        return txs

    def op(self, kind: str, seed: int, time: int) -> list[tuple[SignedTx, Code | None]]:
        """One op as signed txs, each with the code it must get (None: depends on state)."""
        c = Choices(seed)
        admin = ADMINS[c.pick(list(UNITS))]
        app, app_ds = c.pick(self.apps) if self.apps else ("ab" * 32, FILINGS)
        match kind:
            case "unit.create":
                who = c.pick([*ADMINS.values(), OWNERS["tax"], ANALYST])
                unit = c.pick(["credit", "collection", "service", "extra"])
                return [(self.tx(who, kind, {"unit": unit, "name": "A unit"}, time), None)]
            case "member.add":
                spare = c.pick(SPARES)
                roles = c.pick([["analyst"], ["auditor"], ["unit_owner"]])
                payload: dict[str, Any] = {"public_key": spare.public_hex, "name": "spare", "roles": roles}
                if roles == ["unit_owner"]:
                    payload["unit"] = c.pick(list(UNITS.values()))
                return [(self.tx(admin, kind, payload, time), None)]
            case "dataset.register":
                org = c.pick(["tax", "power"])
                who = c.pick([OWNERS[org], ADMINS[org], ANALYST])
                name = c.pick(["filings", "consumption", "extra"])
                reg = self._register(org, UNITS[org], name, c.pick([["unit"], ["org"], ["unit", "org"]]))
                return [(self.tx(who, kind, reg, time), None)]
            case "application.submit":
                who = c.pick([ANALYST, ADMINS["bank"], OWNERS["tax"]])
                dataset = c.pick([FILINGS, CONSUMPTION, "tax/collection/extra", "power/service/extra"])
                return [(self._apply(who, dataset, time, max_uses=1 + c.pick([0, 1, 2])), None)]
            case "application.approve" | "application.reject":
                who = c.pick([OWNERS["tax"], ADMINS["tax"], OWNERS["power"], ADMINS["power"], ANALYST])
                return [(self._decide(who, kind, app, c.pick(["unit", "org"]), time), None)]
            case "application.revoke":
                who = c.pick([OWNERS["tax"], ADMINS["tax"], OWNERS["power"], ANALYST])
                return [(self.tx(who, kind, {"application": app, "reason": "policy change"}, time), None)]
            case "task.submit":
                return [(self._task(app, app_ds, time), None)]
            case "run.start":
                task, task_ds = c.pick(self.tasks) if self.tasks else ("cd" * 32, FILINGS)
                return [(self._run(task, task_ds, time), None)]
            case "grant_and_run":
                sub = self._apply(ANALYST, CONSUMPTION, time)
                app_id = sub.tx_id(SUITE)
                approve = self._decide(OWNERS["power"], "application.approve", app_id, "unit", time)
                task = self._task(app_id, CONSUMPTION, time)
                run = self._run(task.tx_id(SUITE), CONSUMPTION, time)
                return [(sub, Code.OK), (approve, Code.OK), (task, Code.OK), (run, Code.OK)]
            case "wrong_signer":
                sub = self._apply(ANALYST, FILINGS, time)
                decide = self._decide(OWNERS["power"], "application.approve", sub.tx_id(SUITE), "unit", time)
                return [(sub, Code.OK), (decide, Code.FORBIDDEN)]
            case "unknown_dataset":
                return [(self._apply(ANALYST, "tax/collection/nowhere", time), Code.NOT_FOUND)]
            case "double_approval":
                sub = self._apply(ANALYST, FILINGS, time)
                first = self._decide(OWNERS["tax"], "application.approve", sub.tx_id(SUITE), "unit", time)
                again = self._decide(OWNERS["tax"], "application.approve", sub.tx_id(SUITE), "unit", time)
                return [(sub, Code.OK), (first, Code.OK), (again, Code.DUPLICATE_DECISION)]
            case "malformed_payload":
                return [(self.tx(admin, "unit.create", {"unit": 5, "name": "x"}, time), Code.MALFORMED)]
            case "malformed_body":
                body = b'{"chain":"test-chain","type":"unit.create"}'
                return [(SignedTx(body, admin.sign(TX_DOMAIN + body)), Code.MALFORMED)]
            case "replay":
                # The signer is checked before replay (a forged tx never reaches other checks),
                # so replaying an outsider's tx is refused as UNKNOWN_SIGNER.
                stx = c.pick(self.sent)
                outsider = json.loads(stx.body)["signer"] == OUTSIDER.key_id
                return [(stx, Code.UNKNOWN_SIGNER if outsider else Code.REPLAYED)]
            case "stale":
                stx = self.tx(
                    admin, "unit.create", {"unit": "late", "name": "x"}, time, created_at=time - WINDOW - 1
                )
                return [(stx, Code.STALE)]
            case "future":
                stx = self.tx(
                    admin, "unit.create", {"unit": "early", "name": "x"}, time, created_at=time + SKEW + 1
                )
                return [(stx, Code.STALE)]
            case "wrong_chain":
                stx = self.tx(admin, "unit.create", {"unit": "other", "name": "x"}, time, chain="other-chain")
                return [(stx, Code.WRONG_CHAIN)]
            case "unknown_type":
                return [(self.tx(admin, "unit.destroy", {"unit": "credit"}, time), Code.UNKNOWN_TYPE)]
            case "unknown_signer":
                return [
                    (
                        self.tx(OUTSIDER, "unit.create", {"unit": "rogue", "name": "x"}, time),
                        Code.UNKNOWN_SIGNER,
                    )
                ]
        raise AssertionError(kind)


Op = tuple[str, int]
ops = st.tuples(st.sampled_from(VALID_KINDS + INVALID_KINDS), st.integers(0, 2**20))
time_steps = st.one_of(st.integers(0, 60_000), st.integers(DAY, 20 * DAY))
plans = st.lists(st.tuples(time_steps, st.lists(ops, min_size=1, max_size=6)), min_size=1, max_size=6)


@dataclass
class Chain:
    blocks: list[Block]
    expected: list[list[Code | None]]  # per block, per tx


def build_chain(plan: list[tuple[int, list[Op]]]) -> Chain:
    """Genesis, a bootstrap block, then one block per planned step (time advancing by its delta)."""
    builder, stream = BlockBuilder(), Stream()
    time = T0 + 1000
    boot = stream.bootstrap(time)
    blocks = [builder.genesis(), builder.block(boot, time)]
    expected: list[list[Code | None]] = [[], [Code.OK] * len(boot)]
    for delta, step in plan:
        time += delta
        txs = [pair for kind, seed in step for pair in stream.op(kind, seed, time)]
        blocks.append(builder.block([t for t, _ in txs], time))
        expected.append([code for _, code in txs])
    return Chain(blocks, expected)


def _outcomes(results: Sequence[Any]) -> list[tuple[int, str, list[dict[str, Any]]]]:
    return [(int(r.code), r.reason, r.events) for r in results]


# -- properties ------------------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=plans)
def test_replicas_agree_on_every_block(plan: list[tuple[int, list[Op]]]) -> None:
    # Prepare
    chain = build_chain(plan)
    with tempfile.TemporaryDirectory() as tmp:
        dbs = [ChainDB(":memory:"), ChainDB(":memory:"), ChainDB(Path(tmp) / "replica.sqlite")]
        replicas = [Replica(db, GENESIS) for db in dbs]
        try:
            for block, expected in zip(chain.blocks, chain.expected, strict=True):
                height = block.header.height

                # Execute
                results = [_outcomes(r.apply_block(block)) for r in replicas]

                # Assert: same outcome and same state root everywhere, outcomes stored as computed
                assert results[0] == results[1] == results[2]
                assert len({r.state_root() for r in replicas}) == 1
                assert all(r.height == height for r in replicas)
                for db in dbs:
                    rows = db.txs_in_block(height)
                    assert [(row["code"], row["reason"], row["events"]) for row in rows] == results[0]
                    assert [row["tx_id"] for row in rows] == [t.tx_id(SUITE) for t in block.txs]
                codes = [code for code, _, _ in results[0]]
                for got, want in zip(codes, expected, strict=True):
                    if want is not None:
                        assert got == int(want), (Code(got), want)

            report = verify_chain(dbs[2], GENESIS)
            assert report.ok, report.problem
            assert report.state_root == replicas[0].state_root()
        finally:
            for db in dbs:
                db.close()


def _cut(txs: list[SignedTx], cuts: list[int]) -> list[list[SignedTx]]:
    bounds = [0, *sorted(set(cuts)), len(txs)]
    return [txs[a:b] for a, b in pairwise(bounds) if b > a]


def _replay(groups: Sequence[Sequence[SignedTx]], times: Sequence[int]) -> tuple[str, list[int]]:
    builder = BlockBuilder()
    replica = Replica(ChainDB(":memory:"), GENESIS)
    codes: list[int] = []
    replica.apply_block(builder.genesis())
    for group, time in zip(groups, times, strict=True):
        codes += [int(r.code) for r in replica.apply_block(builder.block(group, time))]
    root = replica.state_root()
    replica.db.close()
    return root, codes


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(ops, min_size=1, max_size=20), data=st.data())
def test_block_boundaries_do_not_matter_when_block_times_are_equal(
    steps: list[Op], data: st.DataObject
) -> None:
    # Prepare: one tx sequence, every block at the same time, two different sets of block boundaries
    time = T0 + 1000
    stream = Stream()
    txs = stream.bootstrap(time) + [t for kind, seed in steps for t, _ in stream.op(kind, seed, time)]
    cut_points = st.lists(st.integers(1, len(txs) - 1), max_size=8)
    split_a, split_b = _cut(txs, data.draw(cut_points)), _cut(txs, data.draw(cut_points))

    # Execute
    root_a, codes_a = _replay(split_a, [time] * len(split_a))
    root_b, codes_b = _replay(split_b, [time] * len(split_b))

    # Assert
    assert sum(map(len, split_a)) == sum(map(len, split_b)) == len(txs)
    assert codes_a == codes_b
    assert root_a == root_b


def test_same_split_at_different_block_times_gives_a_different_root() -> None:
    # Prepare: block 1 bootstraps, block 2 creates a unit (its record holds the block time)
    time = T0 + 1000
    stream = Stream()
    groups = [
        stream.bootstrap(time),
        [stream.tx(ADMINS["bank"], "unit.create", {"unit": "x", "name": "X"}, time)],
    ]

    # Execute
    root_equal, codes_equal = _replay(groups, [time, time])
    root_later, codes_later = _replay(groups, [time, time + 1])

    # Assert: same outcomes, but the state records when things happened
    assert codes_equal == codes_later == [0] * 10
    assert root_equal != root_later


# -- signatures -------------------------------------------------------------------------------------------


def _bootstrapped() -> tuple[BlockBuilder, Stream, Replica, int]:
    builder, stream = BlockBuilder(), Stream()
    time = T0 + 1000
    replica = Replica(ChainDB(":memory:"), GENESIS)
    replica.apply_block(builder.genesis())
    replica.apply_block(builder.block(stream.bootstrap(time), time))
    return builder, stream, replica, time


def test_block_with_a_bad_tx_signature_is_refused_whole() -> None:
    # Prepare
    builder, stream, replica, time = _bootstrapped()
    good = stream.tx(ADMINS["bank"], "unit.create", {"unit": "fine", "name": "Fine"}, time)
    forged = _forge_signature(stream.tx(ADMINS["tax"], "unit.create", {"unit": "forged", "name": "F"}, time))
    block = builder.block([good, forged], time)
    root, height = replica.state_root(), replica.height

    # Execute
    with pytest.raises(ChainCorrupted) as exc:
        replica.apply_block(block)

    # Assert
    assert exc.value.height == height + 1
    assert "signature does not verify" in exc.value.reason
    assert replica.height == height
    assert replica.state_root() == root
    assert not replica.db.has_tx(good.tx_id(SUITE))


@pytest.mark.parametrize("flaw", ["stale", "wrong_chain", "replayed"])
def test_block_with_a_bad_signature_on_an_otherwise_refused_tx_is_refused(flaw: str) -> None:
    # Prepare: a forged signature (of a known member key) on a tx the envelope refuses for another reason
    builder, stream, replica, time = _bootstrapped()
    admin = ADMINS["tax"]
    if flaw == "stale":
        stx = stream.tx(
            admin, "unit.create", {"unit": "old", "name": "Old"}, time, created_at=time - WINDOW - 1
        )
    elif flaw == "wrong_chain":
        stx = stream.tx(admin, "unit.create", {"unit": "far", "name": "Far"}, time, chain="other-chain")
    else:
        stx = stream.sent[0]
    block = builder.block([_forge_signature(stx)], time)
    height = replica.height

    # Execute / Assert
    with pytest.raises(ChainCorrupted):
        replica.apply_block(block)
    assert replica.height == height


# -- the orderer path --------------------------------------------------------------------------------------


def test_orderer_path_and_a_replica_of_its_blocks_reach_the_same_state() -> None:
    # Prepare: the orderer admits valid txs and refuses the rest before ordering
    c = Consortium.create()
    ds, app = c.grant()
    c.clock.advance(DAY)
    task = c.send(
        c.analyst,
        "task.submit",
        {"engine": "tee", "inputs": [{"dataset": ds, "grant": app, "columns": ["credit_code"]}],
         "code_digest": digest("code"), "code": "code"},
    )  # fmt: skip
    unknown_dataset = {
        "dataset": "tax/collection/nowhere",
        "purpose": "p",
        "columns": ["year"],
        "engines": ["tee"],
        "expires_at": c.clock.now + DAY,
        "max_uses": 1,
    }
    pending = c.apply(ds)
    refusals = [
        c.refused(c.owners["power"], "application.approve", {"application": pending, "level": "unit"}),
        c.refused(c.analyst, "application.submit", unknown_dataset),
        c.refused(c.admins["bank"], "unit.create", {"unit": "late", "name": "x"}, created_at=T0 - DAY),
    ]
    batch = [
        c.tx(
            c.analyst,
            "run.start",
            {"attestation": ATTESTATION, "task": task.tx_id, "input_digests": [digest("filings v1")]},
        ),
        c.tx(c.admins["power"], "unit.create", {"unit": "grid", "name": "Grid"}),
        c.tx(c.admins["power"], "unit.create", {"unit": "grid", "name": "Grid again"}),
        c.tx(OUTSIDER, "unit.create", {"unit": "x", "name": "x"}),
    ]
    mixed = c.chain.submit_many(batch)
    blocks = c.chain.blocks_since(-1, 1000)
    replica = Replica(ChainDB(":memory:"), c.genesis)

    # Execute
    for block in blocks:
        replica.apply_block(block)

    # Assert
    assert [r.code for r in refusals] == [Code.FORBIDDEN, Code.NOT_FOUND, Code.STALE]
    assert [type(r) for r in mixed] == [Receipt, Receipt, TxRefused, TxRefused]
    assert [r.code for r in mixed if isinstance(r, TxRefused)] == [Code.ALREADY_EXISTS, Code.UNKNOWN_SIGNER]
    assert replica.height == c.chain.head().height
    assert replica.state_root() == c.root()
    orderer_rows = [(r["tx_id"], r["code"], r["events"]) for r in c.chain.db.iter_txs()]
    assert [(r["tx_id"], r["code"], r["events"]) for r in replica.db.iter_txs()] == orderer_rows
    assert all(code == 0 for _, code, _ in orderer_rows)
    assert not any(replica.db.has_tx(r.tx_id) for r in refusals)
    assert verify_chain(replica.db, c.genesis).ok


def test_a_refused_tx_does_not_pin_the_next_block_time() -> None:
    # Prepare
    c = Consortium.create()
    c.refused(c.analyst, "unit.create", {"unit": "nope", "name": "Nope"})
    c.clock.advance(10 * 60_000)  # more than max_clock_skew_ms

    # Execute
    receipt = c.chain.submit(c.tx(c.admins["bank"], "unit.create", {"unit": "later", "name": "Later"}))

    # Assert
    assert receipt.code == 0
    assert c.chain.head().time == c.clock.now


def test_an_expired_grant_stays_expired_after_a_refused_tx() -> None:
    # Prepare: a grant expiring in 30 days; a refusal one ms before expiry; then the clock passes expiry
    c = Consortium.create()
    ds, app = c.grant()
    c.clock.advance(30 * DAY - 1)
    c.refused(c.analyst, "unit.create", {"unit": "nope", "name": "Nope"})
    c.clock.advance(60_000)
    task = {"engine": "tee", "inputs": [{"dataset": ds, "grant": app, "columns": ["credit_code"]}],
            "code_digest": digest("code"), "code": "code"}  # fmt: skip

    # Execute
    refusal = c.refused(c.analyst, "task.submit", task)

    # Assert
    assert refusal.code == Code.EXPIRED
