"""The EVM log against a real local EVM node (ganache): the compiled ConfideLog, batches, a resumable
confirmed reader, a dropped or reorganized append sent again, a reorganization deeper than the
confirmation depth detected."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from confide.ledger.evm import Cursor, DeepReorg, EvmError, EvmLog, LogReader, load_artifact
from evmnode import EvmNode, ganache

TAG = hashlib.sha256(b"test consortium genesis").digest()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EvmNode]:
    with ganache(tmp_path_factory.mktemp("evm") / "ganache.log") as n:
        yield n


@pytest.fixture
def log(node: EvmNode) -> EvmLog:
    return EvmLog.deploy(node.url, node.key, TAG)


def test_the_artifact_is_the_compiled_source() -> None:
    art = load_artifact()
    source = (Path(__file__).resolve().parents[2] / "chain" / "evm" / "ConfideLog.sol").read_bytes()
    assert art.source_sha256 == hashlib.sha256(source).hexdigest()  # rebuilt by make when the source changes
    assert art.solc.startswith("0.8.37") and art.bytecode.startswith("0x60")
    assert {e["name"] for e in art.abi if e["type"] in ("event", "function")} >= {
        "Appended",
        "append",
        "count",
        "tag",
    }


def test_batches_are_numbered_in_order_and_read_back(node: EvmNode, log: EvmLog) -> None:
    assert log.tag() == TAG and log.count() == 0
    a = log.ensure([b"tx-0", b"tx-1", b"tx-2"])
    b = log.ensure([b"tx-3"])
    assert (a.first_seq, a.count, b.first_seq) == (0, 3, 3) and log.count() == 4
    reader = LogReader(log, confirmations=0)
    new, dup = reader.poll()
    assert [e.seq for e in new] == [0, 1, 2, 3] and dup == []
    assert [e.signed_tx for e in new] == [b"tx-0", b"tx-1", b"tx-2", b"tx-3"]
    assert new[0].block_number == a.block_number and new[3].block_number == b.block_number


def test_the_reader_waits_for_confirmations_and_resumes_from_its_cursor(node: EvmNode, log: EvmLog) -> None:
    reader = LogReader(log, confirmations=3, cursor=Cursor(log.head(), log.block_hash(log.head()) or ""))
    log.ensure([b"late-0", b"late-1"])
    assert reader.poll() == ([], [])  # one block deep, three wanted
    node.mine(3)
    new, _ = reader.poll()
    assert [e.signed_tx for e in new] == [b"late-0", b"late-1"]
    saved = reader.cursor
    log.ensure([b"after-restart"])
    node.mine(3)
    resumed = LogReader(log, confirmations=3, cursor=saved)  # a restarted reader
    new, _ = resumed.poll()
    assert [e.signed_tx for e in new] == [b"after-restart"]  # nothing read twice


def test_an_append_reorganized_out_before_confirmation_is_sent_again_and_counted_once(
    node: EvmNode, log: EvmLog
) -> None:
    reader = LogReader(log, confirmations=2, cursor=Cursor(log.head(), log.block_hash(log.head()) or ""))
    snap = node.snapshot()
    sent: list[str] = []
    real_send = log.send

    def send(batch: list[bytes]) -> str:
        sent.append(real_send(batch))
        return sent[-1]

    def step(_: float) -> None:  # while ensure() waits for 2 confirmations
        if len(sent) == 1 and log.confirmed(sent[0], 0) is not None:
            node.revert(snap)  # the block holding the append is reorganized out
        node.mine(1)

    log.send = send  # type: ignore[method-assign]
    receipt = log.ensure([b"will-vanish"], confirmations=2, resend_after_s=0.0, sleep=step)
    assert receipt.resent == 1 and receipt.chain_tx == sent[1]
    assert log.confirmed(sent[0], 0) is None or sent[0] == sent[1]
    node.mine(2)
    new, dup = reader.poll()
    assert [e.signed_tx for e in new] == [b"will-vanish"] and dup == []


def test_a_resent_batch_that_lands_twice_is_reported_as_duplicate(node: EvmNode, log: EvmLog) -> None:
    reader = LogReader(log, confirmations=0, cursor=Cursor(log.head(), log.block_hash(log.head()) or ""))
    log.ensure([b"twice"])
    log.ensure([b"twice"])  # e.g. resent after a timeout while the first was only slow
    new, dup = reader.poll()
    assert [e.signed_tx for e in new] == [b"twice"] and [e.signed_tx for e in dup] == [b"twice"]


def test_a_reorganization_deeper_than_the_confirmation_depth_stops_the_reader(
    node: EvmNode, log: EvmLog
) -> None:
    snap = node.snapshot()
    reader = LogReader(log, confirmations=1, cursor=Cursor(log.head(), log.block_hash(log.head()) or ""))
    log.ensure([b"deep"])
    node.mine(1)
    assert [e.signed_tx for e in reader.poll()[0]] == [b"deep"]
    node.revert(snap)
    node.mine(5)
    with pytest.raises(DeepReorg, match="deeper than 1 confirmations"):
        reader.poll()


def test_refusals_are_clear(node: EvmNode, log: EvmLog) -> None:
    with pytest.raises(EvmError, match="empty batch"):
        log.send([])
    with pytest.raises(EvmError, match="32 bytes"):
        EvmLog.deploy(node.url, node.key, b"short")
    with pytest.raises(EvmError, match="confirmations"):
        LogReader(log, confirmations=-1)
