"""The ``fabric`` backend against the Gateway stand-in that runs the real chaincode (``make fabric``):
the client's protocol, and each protection tried: forged and high-S signatures, a stranger's
certificate, a tampered or replayed envelope, concurrent appenders (MVCC), another consortium's log,
event-stream resume, and every node deriving the same blocks."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from fabric_protos.gateway import gateway_pb2, gateway_pb2_grpc
from fabric_protos.peer import proposal_pb2

from confide.crypto import Identity
from confide.ledger import build_tx
from confide.ledger.fabric.backend import FabricBackend, open_log
from confide.ledger.fabric.gateway import FabricCommitError, FabricError, FabricGateway
from confide.ledger.fabric.log import FabricLog, FabricReader
from confide.ledger.fabric.msp import FabricIdentity, issue_ca, issue_cert
from confide.ledger.fabric.protocol import new_proposal
from confide.ledger.genesis import Genesis
from confide.ledger.ordered_log import Cursor, log_tag
from confide.scenarios.fabricnet import FabricNet, fabric_network
from factories import FakeClock, make_genesis

pytestmark = pytest.mark.timeout(300)
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FabricNet]:
    with fabric_network(tmp_path_factory.mktemp("fabric"), ["Org1MSP", "Org2MSP"]) as n:
        yield n


_names = iter(range(10_000))


def _log(net: FabricNet, tag: bytes = b"\x01" * 32, msp: str = "Org1MSP") -> FabricLog:
    gw = FabricGateway(net.endpoint, net.identity(msp), net.channel, f"t{next(_names)}")
    log = FabricLog(gw)
    log.init(tag)
    return log


def _b64(*xs: bytes) -> str:
    return json.dumps([base64.b64encode(x).decode() for x in xs])


def test_append_count_entries_and_the_chaincodes_own_refusals(net: FabricNet) -> None:
    log = _log(net)
    first = log.gateway.submit("Append", _b64(b"a", b"b"))
    assert first.result == b"0" and first.block_number >= 1
    assert log.gateway.submit("Append", _b64(b"c")).result == b"2"
    assert log.count() == 3
    assert json.loads(log.gateway.evaluate("Entries", "0", "10")) == [
        base64.b64encode(x).decode() for x in (b"a", b"b", b"c")
    ]
    with pytest.raises(FabricError, match="already bound"):  # the chaincode's message reaches the caller
        log.init(b"\x02" * 32)
    with pytest.raises(FabricError, match="not base64"):
        log.gateway.submit("Append", json.dumps(["***"]))
    assert log.count() == 3  # refused calls change nothing


def _raw(net: FabricNet) -> gateway_pb2_grpc.GatewayStub:
    return gateway_pb2_grpc.GatewayStub(grpc.insecure_channel(net.endpoint))


def _endorse(net: FabricNet, ident: FabricIdentity, chaincode: str, args: list[bytes], sign=None):
    tx_id, proposal = new_proposal(ident.creator, net.channel, chaincode, args, 1_700_000_000_000)
    sig = (sign or ident.sign)(proposal)
    signed = proposal_pb2.SignedProposal(proposal_bytes=proposal, signature=sig)
    req = gateway_pb2.EndorseRequest(
        transaction_id=tx_id, channel_id=net.channel, proposed_transaction=signed
    )
    return tx_id, _raw(net).Endorse(req, timeout=10)


def test_a_forged_or_high_s_signature_or_a_strangers_certificate_is_refused(net: FabricNet) -> None:
    log = _log(net)
    cc = log.gateway.chaincode
    me = net.identity("Org1MSP")
    other = ec.generate_private_key(ec.SECP256R1())

    def forged(m: bytes) -> bytes:  # Org1's certificate, someone else's key (a low-S signature)
        r, s = decode_dss_signature(other.sign(m, ec.ECDSA(hashes.SHA256())))
        return encode_dss_signature(r, min(s, N - s))

    with pytest.raises(grpc.RpcError) as err:
        _endorse(net, me, cc, [b"Append", _b64(b"x").encode()], forged)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED and "does not verify" in err.value.details()

    def high_s(m: bytes) -> bytes:
        r, s = decode_dss_signature(me.sign(m))
        return encode_dss_signature(r, N - s)  # the same signature, mirrored: valid ECDSA, refused by Fabric

    with pytest.raises(grpc.RpcError) as err:
        _endorse(net, me, cc, [b"Append", _b64(b"x").encode()], high_s)
    assert "low-S" in err.value.details()
    ca_pem, ca_key = issue_ca("Org1MSP")  # a CA of the attacker's own that calls itself Org1MSP
    cert, key = issue_cert(ca_pem, ca_key, "client.Org1MSP", "Org1MSP")
    stranger = FabricIdentity("Org1MSP", cert, key)
    with pytest.raises(grpc.RpcError) as err:
        _endorse(net, stranger, cc, [b"Append", _b64(b"x").encode()])
    assert "not issued by MSP Org1MSP" in err.value.details()
    unknown = FabricIdentity("EvilMSP", cert, key)
    with pytest.raises(grpc.RpcError, match="not a member"):
        _endorse(net, unknown, cc, [b"Append", _b64(b"x").encode()])
    assert log.count() == 0


def test_a_tampered_envelope_is_refused_and_a_replayed_one_is_marked_duplicate(net: FabricNet) -> None:
    log = _log(net)
    me = net.identity("Org1MSP")
    tx_id, endorsed = _endorse(net, me, log.gateway.chaincode, [b"Append", _b64(b"honest").encode()])
    env = endorsed.prepared_transaction
    stub = _raw(net)
    # the creator signs a payload changed after endorsement: the endorsement no longer covers it
    tampered = env.payload.replace(base64.b64encode(b"honest"), base64.b64encode(b"forged"))
    assert tampered != env.payload
    bad = type(env)(payload=tampered, signature=me.sign(tampered))
    stub.Submit(
        gateway_pb2.SubmitRequest(transaction_id=tx_id, channel_id=net.channel, prepared_transaction=bad)
    )
    status = log.gateway.commit_status(tx_id)
    assert status.result == 10  # ENDORSEMENT_POLICY_FAILURE
    # an envelope whose signature is not the creator's never reaches ordering
    unsigned = type(env)(payload=env.payload, signature=b"\x30\x06\x02\x01\x01\x02\x01\x01")
    with pytest.raises(grpc.RpcError, match="orderer refused"):
        stub.Submit(
            gateway_pb2.SubmitRequest(
                transaction_id=tx_id, channel_id=net.channel, prepared_transaction=unsigned
            )
        )
    assert log.count() == 0
    # a valid append, then the same signed envelope again: marked DUPLICATE_TXID, applied once
    good_id, endorsed = _endorse(net, me, log.gateway.chaincode, [b"Append", _b64(b"once").encode()])
    env = endorsed.prepared_transaction
    env.signature = me.sign(env.payload)
    req = gateway_pb2.SubmitRequest(transaction_id=good_id, channel_id=net.channel, prepared_transaction=env)
    stub.Submit(req)
    assert log.gateway.commit_status(good_id).result == 0
    stub.Submit(req)
    assert log.count() == 1
    assert json.loads(log.gateway.evaluate("Entries", "0", "5")) == [base64.b64encode(b"once").decode()]


def test_concurrent_appenders_collide_on_mvcc_and_retry_into_one_gapless_log(net: FabricNet) -> None:
    log1 = _log(net)
    cc = log1.gateway.chaincode
    log2 = FabricLog(FabricGateway(net.endpoint, net.identity("Org2MSP"), net.channel, cc))
    conflicts: list[int] = []

    def counting(gw: FabricGateway):  # see the MVCC conflicts happen, not only their absence
        real = gw.submit

        def submit(fn: str, *args: str | bytes):
            try:
                return real(fn, *args)
            except FabricCommitError as exc:
                conflicts.append(exc.code)
                raise

        return submit

    for lg in (log1, log2):
        lg.gateway.submit = counting(lg.gateway)  # type: ignore[method-assign]

    def writer(log: FabricLog, who: bytes) -> None:
        for i in range(15):
            log.append([who + b"-%d" % i])

    threads = [threading.Thread(target=writer, args=(lg, w)) for lg, w in ((log1, b"a"), (log2, b"b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert log1.count() == 30
    got = [base64.b64decode(e) for e in json.loads(log1.gateway.evaluate("Entries", "0", "100"))]
    assert sorted(got) == sorted([b"a-%d" % i for i in range(15)] + [b"b-%d" % i for i in range(15)])
    assert [x for x in got if x.startswith(b"a")] == [
        b"a-%d" % i for i in range(15)
    ]  # each writer's order kept
    assert conflicts and set(conflicts) == {11}  # MVCC_READ_CONFLICT, retried


def test_the_event_reader_is_gapless_and_resumes_after_its_cursor(net: FabricNet) -> None:
    log = _log(net)
    for batch in ([b"e0", b"e1"], [b"e2"], [b"e3", b"e4", b"e5"]):
        log.append(batch)
    reader = FabricReader(log)
    entries: list = []
    for _ in range(200):
        new, _ = reader.poll()
        entries += new
        if len(entries) == 6:
            break
        threading.Event().wait(0.02)
    assert [e.signed_tx for e in entries] == [b"e%d" % i for i in range(6)]
    assert [e.block_number for e in entries] == [1, 1, 2, 5, 5, 5]  # a batch's number: its last entry's
    mid = Cursor(entries[2].block_number, entries[2].block_hash)
    reader.close()
    log.append([b"e6"])
    again = FabricReader(log, mid)  # restarted after the second batch: only what follows
    got: list = []
    for _ in range(200):
        got += again.poll()[0]
        if len(got) == 4:
            break
        threading.Event().wait(0.02)
    assert [e.signed_tx for e in got] == [b"e3", b"e4", b"e5", b"e6"]
    again.close()


def _consortium(net: FabricNet, chaincode: str) -> tuple[Genesis, dict[str, Identity], list[Identity]]:
    genesis, _, admins = make_genesis()
    keys = [Identity.generate() for _ in genesis.orgs]
    doc = genesis.model_dump(mode="json")
    for org, key in zip(doc["orgs"], keys, strict=True):
        org["node_public_key"] = key.public_hex
    doc["ledger"] = {"backend": "fabric", "fabric": {"channel": net.channel, "chaincode": chaincode}}
    return Genesis.model_validate(doc), admins, keys


def test_two_nodes_derive_identical_blocks_and_another_consortiums_log_is_refused(
    net: FabricNet, tmp_path: Path
) -> None:
    chaincode = f"t{next(_names)}"
    genesis, admins, keys = _consortium(net, chaincode)
    FabricLog(FabricGateway(net.endpoint, net.identity("Org1MSP"), net.channel, chaincode)).init(
        log_tag(genesis.chain_id)
    )
    clock = FakeClock()
    a = FabricBackend(
        genesis=genesis, orderer_identity=keys[0], gateway=net.endpoint,
        fabric_identity=net.identity("Org1MSP"), path=tmp_path / "a.sqlite", clock=clock,
    )  # fmt: skip
    for i in range(5):
        tx = build_tx(
            admins["bank"],
            genesis.chain_id,
            "unit.create",
            {"unit": f"u{i}", "name": "u"},
            created_at=clock.now,
        )
        a.submit(tx)
    b = FabricBackend(
        genesis=genesis, orderer_identity=keys[1], gateway=net.endpoint,
        fabric_identity=net.identity("Org2MSP"), path=tmp_path / "b.sqlite", clock=clock,
    )  # fmt: skip
    assert b.head().height == a.head().height == 5
    for h in range(1, 6):
        ba, bb = a.db.get_block(h), b.db.get_block(h)
        assert ba is not None and bb is not None
        assert ba.header_bytes == bb.header_bytes  # same log, same header bytes
        assert ba.signature != bb.signature  # each signed by the node that derived it
    assert a.replica.state_root() == b.replica.state_root()
    a.close()
    # restart: resumes from its head's anchor, not from the start
    a2 = FabricBackend(
        genesis=genesis, orderer_identity=keys[0], gateway=net.endpoint,
        fabric_identity=net.identity("Org1MSP"), path=tmp_path / "a.sqlite", clock=clock,
    )  # fmt: skip
    tx = build_tx(
        admins["tax"], genesis.chain_id, "unit.create", {"unit": "t", "name": "t"}, created_at=clock.now
    )
    assert a2.submit(tx).height == 6
    assert b.head().height == 6
    # a genesis of another consortium pointed at this log: refused before anything is read
    other, _, _ = _consortium(net, chaincode)
    other = Genesis.model_validate(other.model_dump(mode="json") | {"chain_id": "another-chain"})
    with pytest.raises(FabricError, match="another consortium"):
        open_log(other, net.endpoint, net.identity("Org1MSP"))
    with pytest.raises(FabricError, match="not initialized"):
        open_log(_consortium(net, "never-initialized")[0], net.endpoint, net.identity("Org1MSP"))


def test_consortium_init_binds_the_chaincode_once_and_refuses_another_consortiums(
    net: FabricNet, tmp_path: Path
) -> None:
    from confide.ledger.errors import LedgerError
    from confide.ledger.genesis import load_genesis
    from confide.node.config import load_node_config
    from confide.node.consortium import FabricOrg, OrgEntry, init_consortium

    chaincode = f"t{next(_names)}"
    orgs = [OrgEntry("bank", "Bank"), OrgEntry("tax", "Tax")]
    fab = [FabricOrg(net.endpoint, m, *net.clients[m]) for m in ("Org1MSP", "Org2MSP")]
    kw = {"tls": False, "tee": False, "ledger": "fabric", "fabric_orgs": fab, "fabric_chaincode": chaincode}
    with pytest.raises(LedgerError, match="each org's gateway"):
        init_consortium(tmp_path / "short", orgs, **kw | {"fabric_orgs": fab[:1]})
    assert not (tmp_path / "short").exists()  # bad input changes nothing
    mixed = [fab[0], FabricOrg(net.endpoint, "Org2MSP", net.clients["Org2MSP"][0], net.clients["Org1MSP"][1])]
    with pytest.raises(LedgerError, match="is not the key of the certificate"):
        init_consortium(tmp_path / "mixed", orgs, **kw | {"fabric_orgs": mixed})
    assert not (tmp_path / "mixed").exists()
    init_consortium(tmp_path / "c1", orgs, chain_id="c-one", **kw)
    cfg = load_node_config(tmp_path / "c1" / "tax")
    assert cfg.fabric_msp_id == "Org2MSP" and cfg.fabric_gateway == net.endpoint and cfg.orderer_url is None
    assert cfg.fabric_key is not None
    assert cfg.fabric_key.read_bytes() == net.clients["Org2MSP"][1].read_bytes()
    genesis = load_genesis(tmp_path / "c1" / "genesis.json")
    assert genesis.ledger.backend == "fabric" and genesis.ledger.fabric.chaincode == chaincode
    with pytest.raises(LedgerError, match="another consortium"):
        init_consortium(tmp_path / "c2", orgs, chain_id="c-two", **kw)
    assert not (tmp_path / "c2" / "genesis.json").exists()


def test_a_tls_gateway_is_reached_with_its_ca_and_refused_without_it(tmp_path: Path) -> None:
    with fabric_network(tmp_path / "tls", ["Org1MSP"], tls=True) as tls_net:
        log = FabricLog(tls_net.gateway("Org1MSP", "tls-log"))
        log.init(b"\x03" * 32)
        assert log.tag() == b"\x03" * 32
        plain = FabricGateway(
            tls_net.endpoint, tls_net.identity("Org1MSP"), tls_net.channel, "tls-log", timeout_s=3
        )
        with pytest.raises(FabricError, match="UNAVAILABLE"):  # plaintext to a TLS gateway
            plain.evaluate("Tag")
        other_ca, _ = issue_ca("someone-else")
        wrong = FabricGateway(
            tls_net.endpoint, tls_net.identity("Org1MSP"), tls_net.channel, "tls-log",
            tls_root_pem=other_ca, timeout_s=3,
        )  # fmt: skip
        with pytest.raises(FabricError, match="UNAVAILABLE"):  # a server certificate it cannot verify
            wrong.evaluate("Tag")
