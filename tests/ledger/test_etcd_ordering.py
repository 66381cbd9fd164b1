"""Replicated ordering on a three-member etcd cluster (Raft): one member stops mid-stream and the
ledger keeps committing; it comes back and its node catches up; every node derives the same block
at every height. Each node reads and appends through its own org's member only."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from confide.crypto import Identity
from confide.ledger import build_tx
from confide.ledger.etcd import EtcdError
from confide.ledger.etcd.backend import EtcdBackend
from confide.ledger.genesis import Genesis
from confide.scenarios.etcdcluster import etcd_cluster
from factories import FakeClock, make_genesis

pytestmark = pytest.mark.timeout(300)


def _consortium() -> tuple[Genesis, dict[str, Identity], list[Identity]]:
    genesis, _, admins = make_genesis()
    keys = [Identity.generate() for _ in genesis.orgs]  # each org's node key signs what it derives
    doc = genesis.model_dump(mode="json")
    for org, key in zip(doc["orgs"], keys, strict=True):
        org["node_public_key"] = key.public_hex
    doc["ledger"] = {"backend": "etcd"}
    return Genesis.model_validate(doc), admins, keys


def test_a_member_down_mid_stream_then_back_and_every_node_agrees(tmp_path: Path) -> None:
    genesis, admins, keys = _consortium()
    clock = FakeClock()
    with etcd_cluster(tmp_path / "etcd") as cluster:
        nodes = [
            EtcdBackend(
                genesis=genesis,
                orderer_identity=keys[i],
                endpoints=[cluster.url(i)],
                path=tmp_path / f"node{i}.sqlite",
                clock=clock,
            )
            for i in range(3)
        ]
        done: list[str] = []
        errors: list[BaseException] = []
        stop = threading.Event()

        def stream() -> None:  # the bank's node keeps submitting, one tx at a time
            i = 0
            while not stop.is_set():
                tx = build_tx(admins["bank"], genesis.chain_id, "unit.create", {"unit": f"u{i}", "name": "u"},
                              created_at=clock.now)  # fmt: skip
                try:
                    done.append(nodes[0].submit(tx).tx_id)
                except BaseException as exc:
                    errors.append(exc)
                    return
                i += 1

        writer = threading.Thread(target=stream)
        writer.start()
        while len(done) < 10:
            time.sleep(0.02)
        cluster.make_leader(2)
        cluster.stop(2)  # the power company's member, the Raft leader, goes down mid-stream: an election
        at_stop = len(done)
        while len(done) < at_stop + 15:  # the ledger keeps committing on two of three members
            assert not errors, errors
            time.sleep(0.02)
        with pytest.raises(EtcdError):  # the power node's own member is down: it cannot read
            nodes[2].sync()
        behind = nodes[2].replica.height
        cluster.start(2)
        cluster.wait_healthy(2)
        stop.set()
        writer.join(timeout=60)
        assert not errors, errors
        nodes[1].submit(build_tx(admins["tax"], genesis.chain_id, "unit.create", {"unit": "t", "name": "t"},
                                 created_at=clock.now))  # fmt: skip
        heights = [n.sync() for n in nodes]  # the member came back; its node catches up
        assert heights[2] > behind and len(set(heights)) == 1
        chains = [n.blocks_since(-1, 10_000) for n in nodes]
        assert len(chains[0]) == heights[0] + 1 == len(done) + 2  # genesis, every tx in its own block
        for blocks in zip(*chains, strict=True):  # the same block at every height on every node
            assert len({b.header_bytes for b in blocks}) == 1
        assert len({n.replica.state_root() for n in nodes}) == 1


def test_the_ledger_benchmark_runs_on_etcd_with_the_embedded_keys(tmp_path: Path) -> None:
    from confide.ledger.bench import run_ledger_bench
    from confide.ledger.derived_bench import run_derived_ledger_bench

    etcd = run_derived_ledger_bench("etcd", txs=120, block_txs=50, workdir=tmp_path / "e")
    embedded = run_ledger_bench(txs=120, block_txs=50, workdir=tmp_path / "m")
    assert set(embedded) <= set(etcd) and etcd["backend"] == "etcd"
    assert etcd["replica_state_root_matches"] is True and etcd["blocks"] == 3
