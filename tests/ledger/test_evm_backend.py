"""The ``evm`` backend beyond the shared contract suite: two nodes derive the same blocks from one log,
a restarted node resumes from its cursor, a tx someone appended past admission is recorded with its
rejection code, junk bytes in the log are skipped, and forged derived blocks are refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from confide.crypto import Identity
from confide.ledger import ChainCorrupted, build_tx, open_backend, verify_proof
from confide.ledger.block import BLOCK_DOMAIN, Block
from confide.ledger.derived import encode_entry
from confide.ledger.embedded import ChainDB, Replica
from confide.ledger.evm import EvmError, EvmLog
from confide.ledger.evm.backend import log_tag
from confide.ledger.genesis import Genesis
from evmnode import EvmNode, ganache
from factories import T0, FakeClock, make_genesis


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EvmNode]:
    with ganache(tmp_path_factory.mktemp("evm") / "ganache.log", start_ms=T0 + 500) as n:
        yield n


def _consortium(node: EvmNode) -> tuple[Genesis, Identity, dict[str, Identity], Identity, EvmLog]:
    genesis, orderer, admins = make_genesis()
    bank_node = Identity.generate()
    log = EvmLog.deploy(node.url, node.key, log_tag(genesis.chain_id))
    doc = genesis.model_dump(mode="json")
    doc["orgs"][0]["node_public_key"] = bank_node.public_hex
    doc["ledger"] = {"backend": "evm", "evm": {"log_address": log.address, "chain_id": 1337}}
    return Genesis.model_validate(doc), orderer, admins, bank_node, log


def _open(genesis: Genesis, who: Identity, node: EvmNode, path: Path | str = ":memory:"):  # type: ignore[no-untyped-def]
    return open_backend(
        "evm", genesis=genesis, orderer_identity=who, rpc_url=node.url, account_key=node.key, path=path
    )


def _unit(admin: Identity, chain: str, unit: str, clock: FakeClock):  # type: ignore[no-untyped-def]
    return build_tx(admin, chain, "unit.create", {"unit": unit, "name": unit}, created_at=clock.now)


def test_two_nodes_derive_the_same_blocks_and_state_from_one_log(node: EvmNode, tmp_path: Path) -> None:
    genesis, orderer, admins, bank_node, _ = _consortium(node)
    clock = FakeClock()
    a = _open(genesis, orderer, node, tmp_path / "a.sqlite")
    b = _open(genesis, bank_node, node, tmp_path / "b.sqlite")  # another node, another signing key
    a.submit_many([_unit(admins["bank"], genesis.chain_id, f"u{i}", clock) for i in range(3)])
    r = b.submit(_unit(admins["tax"], genesis.chain_id, "t1", clock))
    assert a.head().height == b.head().height == 2
    for x, y in zip(a.blocks_since(-1), b.blocks_since(-1), strict=True):
        assert x.header_bytes == y.header_bytes  # same header bytes, signed by different nodes
        assert x.signature != y.signature
    assert a.db.state_root(genesis.crypto) == b.db.state_root(genesis.crypto)
    assert verify_proof(genesis, a.proof(r.tx_id)) and verify_proof(genesis, b.proof(r.tx_id))
    stranger = Identity.generate()  # a block signed by a key that is not a consortium node's
    block = b.blocks_since(0)[0]
    forged = Block(block.header_bytes, stranger.sign(BLOCK_DOMAIN + block.header_bytes), block.txs)
    fresh = Replica(ChainDB(":memory:"), genesis)
    fresh.apply_block(a.blocks_since(-1)[0])
    with pytest.raises(ChainCorrupted, match="not signed by a node"):
        fresh.apply_block(forged)


def test_a_restarted_node_resumes_from_its_cursor(node: EvmNode, tmp_path: Path) -> None:
    genesis, orderer, admins, _, _ = _consortium(node)
    clock = FakeClock()
    path = tmp_path / "chain.sqlite"
    first = _open(genesis, orderer, node, path)
    kept = first.submit(_unit(admins["bank"], genesis.chain_id, "kept", clock))
    root = first.db.state_root(genesis.crypto)
    first.close()
    again = _open(genesis, orderer, node, path)
    assert again.head().height == 1 and again.db.state_root(genesis.crypto) == root
    assert verify_proof(genesis, again.proof(kept.tx_id))
    again.submit(_unit(admins["bank"], genesis.chain_id, "next", clock))
    assert again.head().height == 2


def test_a_tx_appended_past_admission_is_recorded_refused_and_junk_is_skipped(node: EvmNode) -> None:
    genesis, orderer, admins, _, log = _consortium(node)
    clock = FakeClock()
    backend = _open(genesis, orderer, node)
    tx = _unit(admins["bank"], genesis.chain_id, "dup", clock)
    backend.submit(tx)
    again = _unit(admins["bank"], genesis.chain_id, "dup", clock)  # same unit: the contract refuses
    log.ensure([b"not a signed tx", encode_entry(again)])  # appended by someone who skipped the check
    assert backend.head().height == 2
    (block,) = backend.blocks_since(1)
    assert len(block.txs) == 1  # the junk bytes were skipped
    row = backend.db.find_tx(again.tx_id(genesis.crypto))
    assert row is not None and row["code"] != 0 and "exists" in row["reason"]


def test_a_log_of_another_consortium_or_an_embedded_genesis_is_refused(node: EvmNode) -> None:
    genesis, orderer, _, _, _ = _consortium(node)
    other = EvmLog.deploy(node.url, node.key, log_tag("another-chain"))
    doc = genesis.model_dump(mode="json")
    doc["ledger"]["evm"]["log_address"] = other.address
    with pytest.raises(EvmError, match="another consortium"):
        _open(Genesis.model_validate(doc), orderer, node)
    embedded, orderer2, _ = make_genesis()
    with pytest.raises(Exception, match="embedded"):
        _open(embedded, orderer2, node)


def test_batches_are_cut_to_fit_the_block_gas_limit(node: EvmNode) -> None:
    *_, log = _consortium(node)
    limit = int(log.w3.eth.get_block("latest")["gasLimit"])
    big = [b"x" * 20_000] * (limit // (40 * 20_000) + 5)  # more than one block's gas in all
    batches = log.split(big, max_count=10_000)
    assert len(batches) >= 2 and sum(len(b) for b in batches) == len(big)
    assert all(log.gas_for(b) <= limit * 4 // 5 for b in batches)
    assert [len(b) for b in log.split([b"a"] * 10, max_count=4)] == [4, 4, 2]
    with pytest.raises(EvmError, match="does not fit"):
        log.split([b"y" * limit], max_count=1)


def test_the_ledger_benchmark_runs_on_evm_with_the_embedded_keys(node: EvmNode, tmp_path: Path) -> None:
    from confide.ledger.bench import run_ledger_bench
    from confide.ledger.derived_bench import run_derived_ledger_bench

    evm = run_derived_ledger_bench(
        "evm", txs=120, block_txs=50, workdir=tmp_path / "e", endpoint=node.url, account_key=node.key
    )
    embedded = run_ledger_bench(txs=120, block_txs=50, workdir=tmp_path / "m")
    assert set(embedded) <= set(evm) and evm["backend"] == "evm"
    assert evm["replica_state_root_matches"] is True and evm["blocks"] == 3
