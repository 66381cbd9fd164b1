"""Tamper evidence of the embedded chain: edit ``chain.sqlite`` by hand, then let ``confide ledger verify``,
a verifying replica and the inclusion-proof checker find it.

One pristine workspace is built per module (the 13-block foundation demo plus one block of five txs) and
copied for every test, so each test tampers with a fresh real chain on disk. Every tamper case asserts
exit code 1 and that the output names the first bad block; a state edit names no block but the state root.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from confide.interfaces.cli import app
from confide.ledger import Block, ChainCorrupted, InclusionProof, Receipt, build_tx, verify_proof
from confide.ledger.embedded import ChainDB, Replica, verify_chain
from confide.ledger.local import LocalLedger
from confide.scenarios.foundation import run_foundation_demo

EXTRA_TXS = 5  # txs in the last block (the demo's own blocks hold one tx each)

Tamper = Callable[[sqlite3.Connection], None]
BlockTamper = Callable[[sqlite3.Connection], int]  # returns the height it made bad


# -- helpers -------------------------------------------------------------------------------------------


def _flip(data: bytes, pos: int) -> bytes:
    """XOR the low bit of one byte (a digit stays a digit: 0<->1, 2<->3, ...)."""
    out = bytearray(data)
    out[pos] ^= 0x01
    return bytes(out)


def _last_digit_of(raw: bytes, field: str) -> int:
    """Offset of the last digit of the integer value of ``"field":`` in canonical JSON."""
    m = re.search(rb'"' + field.encode() + rb'":(\d+)', raw)
    assert m is not None, f"{field} not in {raw[:80]!r}"
    return m.end(1) - 1


def _flip_hex(s: str, pos: int) -> str:
    return s[:pos] + ("1" if s[pos] == "0" else "0") + s[pos + 1 :]


@contextmanager
def _sql(workspace: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(workspace / "chain.sqlite")
    try:
        yield conn
        conn.commit()
    finally:
        conn.close()


def _verify_cli(workspace: Path) -> tuple[int, str]:
    """Run ``confide ledger verify``; return exit code and whitespace-normalised output (rich wraps)."""
    result = CliRunner().invoke(app, ["ledger", "verify", "--dir", str(workspace)])
    return result.exit_code, " ".join(result.output.split())


def _height_of_first(conn: sqlite3.Connection, tx_type: str) -> int:
    row = conn.execute("SELECT height FROM txs WHERE type=? ORDER BY height LIMIT 1", (tx_type,)).fetchone()
    assert row is not None
    return int(row[0])


def _head_height(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT MAX(height) FROM blocks").fetchone()[0])


# -- fixtures ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The foundation demo chain (blocks 0-12) plus block 13 holding five unit.create txs."""
    ws = tmp_path_factory.mktemp("pristine") / "ws"
    run_foundation_demo(ws, say=lambda s: None)
    led = LocalLedger(ws)
    try:
        admin = led.key("bank-admin")
        txs = [
            build_tx(admin, led.genesis.chain_id, "unit.create", {"unit": f"extra{i}", "name": f"Extra {i}"})
            for i in range(EXTRA_TXS)
        ]
        receipts = led.backend.submit_many(txs)
        assert all(isinstance(r, Receipt) and r.code == 0 for r in receipts), receipts
        assert led.backend.head().height == 13
    finally:
        led.close()
    return ws


@pytest.fixture
def workspace(pristine: Path, tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    shutil.copytree(pristine, ws)
    return ws


# -- confide ledger verify -----------------------------------------------------------------------------


def test_untouched_chain_verifies(workspace: Path) -> None:
    # Execute
    code, out = _verify_cli(workspace)

    # Assert
    assert code == 0, out
    assert "OK 14 blocks, 17 txs verified" in out
    assert "first bad block" not in out


def _header_byte(conn: sqlite3.Connection) -> int:
    (header,) = conn.execute("SELECT header FROM blocks WHERE height=5").fetchone()
    header = bytes(header)
    conn.execute(
        "UPDATE blocks SET header=? WHERE height=5", (_flip(header, _last_digit_of(header, "time")),)
    )
    return 5


def _orderer_sig_byte(conn: sqlite3.Connection) -> int:
    (sig,) = conn.execute("SELECT sig FROM blocks WHERE height=7").fetchone()
    conn.execute("UPDATE blocks SET sig=? WHERE height=7", (_flip(bytes(sig), 10),))
    return 7


def _tx_body_digit(conn: sqlite3.Connection) -> int:
    h = _height_of_first(conn, "dataset.register")
    (body,) = conn.execute("SELECT body FROM txs WHERE height=? AND idx=0", (h,)).fetchone()
    body = bytes(body)
    conn.execute(
        "UPDATE txs SET body=? WHERE height=? AND idx=0", (_flip(body, _last_digit_of(body, "row_count")), h)
    )
    return h


def _tx_sig_byte(conn: sqlite3.Connection) -> int:
    h = _height_of_first(conn, "application.submit")
    (sig,) = conn.execute("SELECT sig FROM txs WHERE height=? AND idx=0", (h,)).fetchone()
    conn.execute("UPDATE txs SET sig=? WHERE height=? AND idx=0", (_flip(bytes(sig), 0), h))
    return h


def _swap_blocks_3_and_4(conn: sqlite3.Connection) -> int:
    for table in ("blocks", "txs"):
        conn.execute(f"UPDATE {table} SET height=-1 WHERE height=3")
        conn.execute(f"UPDATE {table} SET height=3 WHERE height=4")
        conn.execute(f"UPDATE {table} SET height=4 WHERE height=-1")
    return 3


def _reorder_txs_in_block(conn: sqlite3.Connection) -> int:
    h = _head_height(conn)
    conn.execute("UPDATE txs SET idx=-1 WHERE height=? AND idx=0", (h,))
    conn.execute("UPDATE txs SET idx=0 WHERE height=? AND idx=1", (h,))
    conn.execute("UPDATE txs SET idx=1 WHERE height=? AND idx=-1", (h,))
    return h


def _drop_one_tx(conn: sqlite3.Connection) -> int:
    h = _head_height(conn)
    conn.execute("DELETE FROM txs WHERE height=? AND idx=2", (h,))
    return h


def _drop_block_row(conn: sqlite3.Connection) -> int:
    conn.execute("DELETE FROM blocks WHERE height=6")
    return 6


def _stored_code(conn: sqlite3.Connection) -> int:
    conn.execute("UPDATE txs SET code=4 WHERE height=9 AND idx=0")
    return 9


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        pytest.param(_header_byte, "orderer signature does not verify", id="header-byte"),
        pytest.param(_orderer_sig_byte, "orderer signature does not verify", id="orderer-sig-byte"),
        pytest.param(_tx_body_digit, "Merkle root of the txs does not match", id="tx-body-digit"),
        pytest.param(_tx_sig_byte, "Merkle root of the txs does not match", id="tx-sig-byte"),
        pytest.param(_swap_blocks_3_and_4, "height is 4, expected 3", id="swap-two-blocks"),
        pytest.param(_reorder_txs_in_block, "Merkle root of the txs does not match", id="reorder-txs"),
        pytest.param(_drop_one_tx, f"header says {EXTRA_TXS} txs, block has {EXTRA_TXS - 1}", id="drop-tx"),
        pytest.param(_drop_block_row, "block 6 is missing (next stored block is 7)", id="drop-block"),
        pytest.param(
            _stored_code, "tx 0: stored code differs from the replay (4 != 0)", id="stored-result-code"
        ),
    ],
)
def test_verify_names_first_bad_block(workspace: Path, tamper: BlockTamper, reason: str) -> None:
    # Prepare
    with _sql(workspace) as conn:
        bad = tamper(conn)

    # Execute
    code, out = _verify_cli(workspace)

    # Assert
    assert code == 1, out
    assert f"chain verification FAILED — first bad block: {bad}: " in out
    assert reason in out


def _edit_state_value(conn: sqlite3.Connection) -> None:
    (value,) = conn.execute("SELECT value FROM state WHERE key='org/tax'").fetchone()
    conn.execute("UPDATE state SET value=? WHERE key='org/tax'", (bytes(value).replace(b"Tax", b"Tux"),))


def _delete_state_row(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM state WHERE key LIKE 'unit/bank/extra0'")


def _insert_state_row(conn: sqlite3.Connection) -> None:
    conn.execute("INSERT INTO state VALUES ('unit/bank/forged', ?)", (b'{"id":"forged"}',))


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(_edit_state_value, id="edit-value"),
        pytest.param(_delete_state_row, id="delete-row"),
        pytest.param(_insert_state_row, id="insert-row"),
    ],
)
def test_verify_reports_edited_state(workspace: Path, tamper: Tamper) -> None:
    # Prepare
    with _sql(workspace) as conn:
        tamper(conn)

    # Execute
    code, out = _verify_cli(workspace)

    # Assert
    assert code == 1, out
    assert "chain verification FAILED — state: stored state root" in out
    assert "differs from the replay's" in out
    assert "first bad block" not in out


@pytest.mark.parametrize(
    ("sql", "where"),
    [
        pytest.param(
            "UPDATE state SET value=replace(value, 'Tax', 'Tux') WHERE key='org/tax'", "state", id="state"
        ),
        pytest.param(
            "UPDATE txs SET body=replace(body, '120000', '990000') WHERE type='dataset.register'",
            "first bad block: 8",
            id="tx-body",
        ),
    ],
)
def test_verify_reports_text_edit_made_with_sqlite_shell(workspace: Path, sql: str, where: str) -> None:
    # Prepare: the edit an operator would make with `sqlite3 chain.sqlite "UPDATE ..."`
    with _sql(workspace) as conn:
        conn.execute(sql)

    # Execute
    result = CliRunner().invoke(app, ["ledger", "verify", "--dir", str(workspace)])

    # Assert
    out = " ".join(result.output.split())
    assert result.exit_code == 1
    assert f"chain verification FAILED — {where}" in out, repr(result.exception)


def test_verify_catches_forged_block_hash_column(workspace: Path) -> None:
    # Prepare
    with _sql(workspace) as conn:
        conn.execute("UPDATE blocks SET hash=? WHERE height=13", ("ab" * 32,))

    # Execute
    code, out = _verify_cli(workspace)

    # Assert
    assert code == 1, out
    assert "first bad block: 13" in out


@pytest.mark.parametrize(
    ("column", "value"),
    [
        pytest.param("signer", "ab" * 32, id="signer"),
        pytest.param("type", "member.remove", id="type"),
        pytest.param("tx_id", "cd" * 32, id="tx_id"),
        pytest.param("reason", "refused by the tax bureau", id="reason"),
        pytest.param("events", "[]", id="events"),
    ],
)
def test_verify_catches_edited_tx_metadata(workspace: Path, column: str, value: str) -> None:
    # Prepare
    with _sql(workspace) as conn:
        conn.execute(f"UPDATE txs SET {column}=? WHERE height=10 AND idx=0", (value,))

    # Execute
    code, out = _verify_cli(workspace)

    # Assert
    assert code == 1, out
    assert "first bad block: 10" in out


def test_verify_with_db_option_checks_that_store(workspace: Path, tmp_path: Path) -> None:
    # Prepare: a tampered copy next to an intact workspace
    other = tmp_path / "copy.sqlite"
    shutil.copy(workspace / "chain.sqlite", other)
    conn = sqlite3.connect(other)
    conn.execute("DELETE FROM blocks WHERE height=2")
    conn.commit()
    conn.close()

    # Execute
    intact = CliRunner().invoke(app, ["ledger", "verify", "--dir", str(workspace)])
    tampered = CliRunner().invoke(app, ["ledger", "verify", "--dir", str(workspace), "--db", str(other)])

    # Assert
    assert intact.exit_code == 0
    assert tampered.exit_code == 1
    assert "first bad block: 2" in " ".join(tampered.output.split())


# -- a verifying replica refuses a tampered block ----------------------------------------------------------


def _stored_blocks(workspace: Path) -> list[Block]:
    db = ChainDB(workspace / "chain.sqlite", readonly=True)
    try:
        return db.blocks_since(-1, 1000)
    finally:
        db.close()


def _b_header(b: Block) -> Block:
    return dataclasses.replace(b, header_bytes=_flip(b.header_bytes, _last_digit_of(b.header_bytes, "time")))


def _b_sig(b: Block) -> Block:
    return dataclasses.replace(b, signature=_flip(b.signature, 3))


def _b_tx_body(b: Block) -> Block:
    t = b.txs[1]
    forged = dataclasses.replace(t, body=t.body.replace(b"Extra 1", b"Extra 7"))
    return dataclasses.replace(b, txs=(b.txs[0], forged, *b.txs[2:]))


def _b_tx_sig(b: Block) -> Block:
    t = b.txs[4]
    return dataclasses.replace(b, txs=(*b.txs[:4], dataclasses.replace(t, signature=_flip(t.signature, 0))))


def _b_drop_tx(b: Block) -> Block:
    return dataclasses.replace(b, txs=b.txs[:-1])


def _b_reorder(b: Block) -> Block:
    return dataclasses.replace(b, txs=(b.txs[1], b.txs[0], *b.txs[2:]))


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(_b_header, id="header"),
        pytest.param(_b_sig, id="orderer-sig"),
        pytest.param(_b_tx_body, id="tx-body"),
        pytest.param(_b_tx_sig, id="tx-sig"),
        pytest.param(_b_drop_tx, id="drop-tx"),
        pytest.param(_b_reorder, id="reorder-txs"),
    ],
)
def test_replica_refuses_tampered_block(workspace: Path, tamper: Callable[[Block], Block]) -> None:
    # Prepare
    led = LocalLedger(workspace)
    genesis = led.genesis
    led.close()
    blocks = _stored_blocks(workspace)
    replica = Replica(ChainDB(":memory:"), genesis)
    for b in blocks[:-1]:
        replica.apply_block(b)
    root, height = replica.state_root(), replica.height
    tampered = tamper(blocks[-1])

    # Execute
    with pytest.raises(ChainCorrupted) as exc:
        replica.apply_block(tampered)

    # Assert: named the block, nothing half-applied, and the genuine block still applies
    assert exc.value.height == blocks[-1].header.height == height + 1
    assert replica.height == height
    assert replica.db.block_heights() == list(range(height + 1))
    assert replica.state_root() == root
    assert replica.db.txs_in_block(height + 1) == []
    replica.apply_block(blocks[-1])
    assert replica.height == height + 1


def test_replica_refuses_block_from_a_tampered_store(workspace: Path) -> None:
    # Prepare
    with _sql(workspace) as conn:
        bad = _tx_sig_byte(conn)
    led = LocalLedger(workspace)
    genesis = led.genesis
    led.close()
    blocks = _stored_blocks(workspace)
    replica = Replica(ChainDB(":memory:"), genesis)
    for b in blocks[:bad]:
        replica.apply_block(b)

    # Execute
    with pytest.raises(ChainCorrupted) as exc:
        replica.apply_block(blocks[bad])

    # Assert
    assert exc.value.height == bad
    assert replica.height == bad - 1
    assert not verify_chain(ChainDB(workspace / "chain.sqlite", readonly=True), genesis).ok


# -- inclusion proofs -----------------------------------------------------------------------------------


def test_verify_proof_accepts_every_real_tx(workspace: Path) -> None:
    # Prepare
    led = LocalLedger(workspace)
    try:
        tx_ids = [row["tx_id"] for row in led.db.iter_txs()]

        # Execute
        proofs = [led.backend.proof(tx_id) for tx_id in tx_ids]

        # Assert
        assert len(proofs) == 12 + EXTRA_TXS
        assert all(verify_proof(led.genesis, p) for p in proofs)
        assert [p.index for p in proofs[-EXTRA_TXS:]] == list(range(EXTRA_TXS))
        assert all(p.tree_size == EXTRA_TXS for p in proofs[-EXTRA_TXS:])
        assert [len(p.path) for p in proofs[-EXTRA_TXS:]] == [3, 3, 3, 3, 1]
    finally:
        led.close()


def _p_path(p: InclusionProof) -> InclusionProof:
    return dataclasses.replace(p, path=[p.path[0], _flip_hex(p.path[1], 7), *p.path[2:]])


def _p_header(p: InclusionProof) -> InclusionProof:
    raw = p.header.encode()
    return dataclasses.replace(p, header=_flip(raw, _last_digit_of(raw, "time")).decode())


def _p_index(p: InclusionProof) -> InclusionProof:
    return dataclasses.replace(p, index=p.index + 1)


def _p_tree_size(p: InclusionProof) -> InclusionProof:
    return dataclasses.replace(p, tree_size=p.tree_size + 1)


def _p_leaf_sig(p: InclusionProof) -> InclusionProof:
    return dataclasses.replace(p, leaf=_flip_hex(p.leaf, len(p.leaf) - 1))


def _p_other_tx_id(p: InclusionProof) -> InclusionProof:
    return dataclasses.replace(p, tx_id=_flip_hex(p.tx_id, 0))


def _p_height(p: InclusionProof) -> InclusionProof:
    return dataclasses.replace(p, height=p.height - 1)


def _p_orderer_sig(p: InclusionProof) -> InclusionProof:
    return dataclasses.replace(p, orderer_sig=_flip_hex(p.orderer_sig, 5))


def _p_drop_path_element(p: InclusionProof) -> InclusionProof:
    return dataclasses.replace(p, path=p.path[:-1])


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(_p_path, id="flipped-path-element"),
        pytest.param(_p_drop_path_element, id="short-path"),
        pytest.param(_p_header, id="altered-header"),
        pytest.param(_p_orderer_sig, id="altered-orderer-sig"),
        pytest.param(_p_index, id="wrong-index"),
        pytest.param(_p_tree_size, id="wrong-tree-size"),
        pytest.param(_p_height, id="wrong-height"),
        pytest.param(_p_leaf_sig, id="altered-leaf"),
        pytest.param(_p_other_tx_id, id="tx-id-not-the-leaf"),
    ],
)
def test_verify_proof_rejects_tampered_proof(
    workspace: Path, tamper: Callable[[InclusionProof], InclusionProof]
) -> None:
    # Prepare: tx 0 of the five-tx block (path of three elements)
    led = LocalLedger(workspace)
    try:
        genesis = led.genesis
        tx_id = led.db.txs_in_block(13)[0]["tx_id"]
        genuine = led.backend.proof(tx_id)
    finally:
        led.close()
    assert verify_proof(genesis, genuine)

    # Execute
    ok = verify_proof(genesis, tamper(genuine))

    # Assert
    assert ok is False
