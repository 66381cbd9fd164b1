"""One contract-test suite run against every ledger backend.

Later backends (EVM chains, ChainMaker, Fabric) join the ``BACKENDS`` list and
must pass the same tests. Each test gets a fresh chain from the named backend.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from confide.crypto import Identity
from confide.ledger import (
    LedgerBackend,
    TxRefused,
    UnknownBackend,
    available_backends,
    build_tx,
    open_backend,
    verify_proof,
)
from confide.ledger.embedded import ChainDB, Replica
from confide.ledger.genesis import Genesis
from confide.scenarios.chainmakerchain import ChainMakerNet, chainmaker_standin
from confide.scenarios.etcdcluster import EtcdCluster, etcd_cluster
from confide.scenarios.fabricnet import FabricNet, fabric_network
from evmnode import EvmNode, ganache
from factories import T0, FakeClock, make_genesis

BACKENDS = ["memory", "embedded", "evm", "etcd", "fabric", "chainmaker"]


class Harness:
    def __init__(
        self,
        name: str,
        tmp: Path,
        max_block_txs: int = 2000,
        evm: EvmNode | None = None,
        etcd: EtcdCluster | None = None,
        fabric: FabricNet | None = None,
        chainmaker: ChainMakerNet | None = None,
    ) -> None:
        self.genesis, self.orderer, self.admins = make_genesis(max_block_txs=max_block_txs)
        self.clock = FakeClock()
        self.name = name
        self.tmp = tmp
        self.evm = evm
        # a name no other harness of this run has (id(self) is reused once an earlier harness is freed,
        # and a reused name would find the earlier harness's log on the shared etcd, fabric or chainmaker)
        self.fresh = secrets.token_hex(6)
        if name == "evm":  # a fresh log on the test's EVM node; this harness derives the blocks
            from confide.ledger.evm import EvmLog
            from confide.ledger.evm.backend import log_tag

            assert evm is not None
            log = EvmLog.deploy(evm.url, evm.key, log_tag(self.genesis.chain_id))
            ledger = {"backend": "evm", "evm": {"log_address": log.address, "chain_id": 1337}}
            self.genesis = Genesis.model_validate(self.genesis.model_dump(mode="json") | {"ledger": ledger})
        if name == "etcd":  # a log of its own on the test's three-member cluster (a fresh genesis digest)
            doc = self.genesis.model_dump(mode="json")
            self.genesis = Genesis.model_validate(
                doc | {"ledger": {"backend": "etcd"}, "name": f"t{self.fresh}"}
            )
        if name == "fabric":  # a fresh chaincode name on the stand-in channel: a log of its own
            from confide.ledger.fabric.gateway import FabricGateway
            from confide.ledger.fabric.log import FabricLog
            from confide.ledger.ordered_log import log_tag

            assert fabric is not None
            chaincode = f"log-{self.fresh}"
            gw = FabricGateway(fabric.endpoint, fabric.identity("Org1MSP"), fabric.channel, chaincode)
            FabricLog(gw).init(log_tag(self.genesis.chain_id))
            gw.close()
            ledger = {"backend": "fabric", "fabric": {"channel": fabric.channel, "chaincode": chaincode}}
            self.genesis = Genesis.model_validate(self.genesis.model_dump(mode="json") | {"ledger": ledger})
        if name == "chainmaker":  # a fresh ConfideLog contract on the stand-in chain
            from confide.ledger.ordered_log import log_tag

            assert chainmaker is not None
            contract = f"log_{self.fresh}"
            chainmaker.deploy(contract, log_tag(self.genesis.chain_id)).close()
            ledger = {
                "backend": "chainmaker",
                "chainmaker": {"chain_id": chainmaker.chain_id, "contract_name": contract},
            }
            self.genesis = Genesis.model_validate(self.genesis.model_dump(mode="json") | {"ledger": ledger})
        self.etcd, self.fabric, self.chainmaker = etcd, fabric, chainmaker
        self.backend = self.open()

    def open(self) -> LedgerBackend:
        kwargs = {"genesis": self.genesis, "orderer_identity": self.orderer, "clock": self.clock}
        if self.name == "embedded":
            kwargs["path"] = self.tmp / "chain.sqlite"
        if self.name == "evm":
            assert self.evm is not None
            kwargs |= {"rpc_url": self.evm.url, "account_key": self.evm.key}
        if self.name == "etcd":
            assert self.etcd is not None
            kwargs["endpoints"] = self.etcd.urls
        if self.name == "fabric":
            assert self.fabric is not None
            kwargs |= {"gateway": self.fabric.endpoint, "fabric_identity": self.fabric.identity("Org1MSP")}
        if self.name == "chainmaker":
            assert self.chainmaker is not None
            kwargs["sdk_config"] = self.chainmaker.sdk_config(0)
        return open_backend(self.name, **kwargs)

    def unit_tx(self, org: str, unit: str):
        payload = {"unit": unit, "name": unit}
        return build_tx(
            self.admins[org], self.genesis.chain_id, "unit.create", payload, created_at=self.clock.now
        )


@pytest.fixture(scope="module")
def evm_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EvmNode]:
    """A real local EVM node (ganache, installed by ``make evm``) whose clock starts at the fake
    clock's genesis time."""
    with ganache(tmp_path_factory.mktemp("evm") / "ganache.log", start_ms=T0 + 500) as node:
        yield node


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    """A three-member etcd cluster (Debian's etcd-server, installed by ``make etcd``)."""
    with etcd_cluster(tmp_path_factory.mktemp("etcd")) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def fabric(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FabricNet]:
    """The Fabric Gateway stand-in driving the real chaincode (``make fabric`` installs it)."""
    with fabric_network(tmp_path_factory.mktemp("fabric"), ["Org1MSP", "Org2MSP"]) as net:
        yield net


@pytest.fixture(scope="module")
def chainmaker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChainMakerNet]:
    """The ChainMaker stand-in (the official SDK's stubs, py-evm; ``make chainmaker-env``), its block
    clock starting at the fake clock's time."""
    with chainmaker_standin(tmp_path_factory.mktemp("chainmaker"), start_ms=T0 + 500) as net:
        yield net


@pytest.fixture(params=BACKENDS)
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., Harness]:
    evm = request.getfixturevalue("evm_node") if request.param == "evm" else None
    etcd = request.getfixturevalue("etcd") if request.param == "etcd" else None
    fabric = request.getfixturevalue("fabric") if request.param == "fabric" else None
    cm = request.getfixturevalue("chainmaker") if request.param == "chainmaker" else None
    return lambda **kw: Harness(
        request.param, tmp_path, evm=evm, etcd=etcd, fabric=fabric, chainmaker=cm, **kw
    )


def test_registry_lists_backends_and_rejects_unknown() -> None:
    assert set(BACKENDS) <= set(available_backends())
    with pytest.raises(UnknownBackend) as info:
        open_backend("quantum-ledger")
    assert "embedded" in str(info.value) and "memory" in str(info.value)


def test_genesis_head(make: Callable[..., Harness]) -> None:
    h = make()
    head = h.backend.head()
    assert head.height == 0
    (block0,) = h.backend.blocks_since(-1)
    assert block0.header.genesis == h.genesis.digest()


def test_submit_commits_and_reports_location(make: Callable[..., Harness]) -> None:
    h = make()
    r = h.backend.submit(h.unit_tx("bank", "u1"))
    assert (r.code, r.height, r.index) == (0, 1, 0)
    assert h.backend.head().height == 1
    (block,) = h.backend.blocks_since(0)
    assert block.header.tx_count == 1


def test_refused_tx_changes_nothing(make: Callable[..., Harness]) -> None:
    h = make()
    stranger = Identity.generate()
    bad = build_tx(
        stranger, h.genesis.chain_id, "unit.create", {"unit": "x", "name": "x"}, created_at=h.clock.now
    )
    with pytest.raises(TxRefused) as info:
        h.backend.submit(bad)
    assert info.value.name == "UNKNOWN_SIGNER"
    assert h.backend.head().height == 0


def test_submit_many_batches_and_reports_each(make: Callable[..., Harness]) -> None:
    h = make(max_block_txs=4)
    txs = [h.unit_tx("bank", f"u{i}") for i in range(10)]
    txs.insert(3, txs[0])  # a replay in the middle
    results = h.backend.submit_many(txs)
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(refused) == 1 and refused[0].name == "REPLAYED"
    heights = [r.height for r in results if not isinstance(r, Exception)]
    assert heights == sorted(heights) and len(set(heights)) == 3  # 10 txs in blocks of <= 4
    assert all(b.header.tx_count <= 4 for b in h.backend.blocks_since(0))


def test_blocks_since_is_ascending_and_limited(make: Callable[..., Harness]) -> None:
    h = make()
    for i in range(5):
        h.backend.submit(h.unit_tx("tax", f"u{i}"))
    blocks = h.backend.blocks_since(1, limit=2)
    assert [b.header.height for b in blocks] == [2, 3]
    assert h.backend.blocks_since(5) == []


def test_inclusion_proof_verifies_and_detects_forgery(make: Callable[..., Harness]) -> None:
    h = make()
    results = h.backend.submit_many([h.unit_tx("power", f"u{i}") for i in range(7)])
    for r in results:
        proof = h.backend.proof(r.tx_id)
        assert verify_proof(h.genesis, proof)
    forged = h.backend.proof(results[2].tx_id)
    object.__setattr__(forged, "index", 3)
    assert not verify_proof(h.genesis, forged)
    with pytest.raises(KeyError):
        h.backend.proof("0" * 64)


def test_replica_from_backend_blocks_reaches_same_state(make: Callable[..., Harness]) -> None:
    h = make(max_block_txs=3)
    h.backend.submit_many([h.unit_tx(org, f"u{i}") for i in range(4) for org in ("bank", "tax")])
    one, two = Replica(ChainDB(":memory:"), h.genesis), Replica(ChainDB(":memory:"), h.genesis)
    for block in h.backend.blocks_since(-1, limit=1000):
        one.apply_block(block)
    for block in h.backend.blocks_since(-1, limit=1000):
        two.apply_block(block)
    assert one.height == two.height == h.backend.head().height
    assert one.state_root() == two.state_root()
    if hasattr(h.backend, "db"):  # backends with a local store must agree with the replicas
        assert one.state_root() == h.backend.db.state_root(h.genesis.crypto)


def test_file_backend_survives_reopen(tmp_path: Path) -> None:
    h = Harness("embedded", tmp_path)
    r = h.backend.submit(h.unit_tx("bank", "kept"))
    h.backend.close()
    again = h.open()
    assert again.head().height == 1
    assert verify_proof(h.genesis, again.proof(r.tx_id))
    with pytest.raises(TxRefused):
        again.submit(h.unit_tx("bank", "kept"))  # same unit id: already exists
