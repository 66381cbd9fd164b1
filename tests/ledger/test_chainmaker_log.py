"""The ``chainmaker`` backend through ChainMaker's official Python SDK (out of process, in
``.chainmaker-venv``) against the protocol-level stand-in node (``ledger/chainmaker/standin.py``): the
Python 3.11 ``sha3`` shim, the same ConfideLog contract executed on the stand-in's EVM, append and read
back in order across worker restarts, requests signed with a forged key or a stranger's certificate
refused with ChainMaker's error, another consortium's log refused, and two nodes deriving the same
block headers from one ChainMaker log.

No ChainMaker network runs here (docs/ledger-chainmaker.md). Without ``.chainmaker-venv`` these tests
skip, except under CI (``CI`` set), where they fail: CI must exercise the SDK path.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from confide.crypto import Identity
from confide.ledger import build_tx, verify_proof
from confide.ledger.chainmaker import (
    ChainMakerBackend,
    ChainMakerError,
    ChainMakerLog,
    ChainMakerNodeLedger,
    ChainMakerReader,
    chainmaker_python,
    open_log,
)
from confide.ledger.chainmaker.log import MAX_ENTRY_BYTES
from confide.ledger.derived import encode_entry
from confide.ledger.embedded import ChainDB, Replica
from confide.ledger.errors import LedgerError
from confide.ledger.genesis import Genesis
from confide.ledger.ordered_log import Cursor, log_tag
from confide.scenarios.chainmakerchain import ChainMakerNet, chainmaker_standin
from factories import T0, FakeClock, make_genesis

ROOT = Path(__file__).resolve().parents[2]
TAG = hashlib.sha256(b"test consortium genesis").digest()


def _require_venv() -> Path:
    python = chainmaker_python()
    if not python.exists():
        hint = f"{python} is missing: run 'make chainmaker-env' (ChainMaker's SDK in its own venv)"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the ChainMaker SDK tests, but {hint}")
        pytest.skip(hint)
    return python


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChainMakerNet]:
    _require_venv()
    with chainmaker_standin(tmp_path_factory.mktemp("chainmaker"), start_ms=T0 + 500) as n:
        yield n


def _name() -> str:
    return "confide_log_" + secrets.token_hex(4)


def test_the_sha3_shim_and_the_sdks_evm_encoding_on_python_311() -> None:
    python = _require_venv()
    code = (
        "import json, sys, sha3, chainmaker\n"
        "from chainmaker.utils.evm_utils import calc_evm_method_params\n"
        "k = sha3.keccak_256(); k.update(b'ab'); first = k.hexdigest(); k.update(b'c')\n"
        "m, p = calc_evm_method_params('append', [{'bytes[]': [b'ab', b'']}])\n"
        "print(json.dumps({'empty': sha3.keccak_256(b'').hexdigest(), 'abc': k.hexdigest(), 'ab': first,\n"
        "  'sha3': sha3.sha3_256(b'').hexdigest(), 'shim': sha3.__file__, 'py': list(sys.version_info[:2]),\n"
        "  'method': m, 'data': p['data']}))\n"
    )
    out = json.loads(subprocess.run([str(python), "-I", "-c", code], capture_output=True, check=True).stdout)
    assert out["py"] == [3, 11]
    keccak_empty = "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"  # Keccak, not SHA3
    assert out["empty"] == keccak_empty
    assert out["abc"] == "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45"
    assert out["sha3"] == "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a"
    shim = ROOT / "envs" / "chainmaker" / "sha3_shim" / "sha3.py"
    assert Path(out["shim"]).read_bytes() == shim.read_bytes()  # the venv has the current shim
    from eth_abi import encode
    from eth_utils import keccak

    assert out["ab"] == keccak(b"ab").hex()  # a digest, then more data: as pysha3 allowed
    selector = keccak(text="append(bytes[])")[:4].hex()
    assert out["method"] == selector  # the SDK's method id is the Solidity selector ConfideLog answers
    assert out["data"] == selector + encode(["bytes[]"], [[b"ab", b""]]).hex()
    assert "chainmaker" not in sys.modules  # Confide's own venv never imports the SDK


def test_append_and_read_back_in_order_across_restarts(net: ChainMakerNet) -> None:
    name = _name()
    log = net.deploy(name, TAG)
    assert log.tag() == TAG and log.count() == 0 and log.sdk_version == "3.0.7"
    first = log.append([b"a", b"b"])
    log.append([b"c"])
    reader = ChainMakerReader(log)
    new, dup = reader.poll()
    assert [(e.seq, e.signed_tx) for e in new] == [(0, b"a"), (1, b"b"), (2, b"c")] and dup == []
    assert new[0].block_number == first.block_number and new[0].block_hash == first.block_hash
    assert new[0].chain_tx == first.tx_id and new[0].time_ms % 1000 == 0 and new[0].time_ms >= T0
    cursor = reader.cursor
    assert cursor.block_number == log.head()
    log.close()

    again = ChainMakerLog(net.sdk_config(1), name)  # another org's client, a new SDK worker
    assert again.count() == 3
    again.append([b"d" * MAX_ENTRY_BYTES])  # the largest entry a ChainMaker event carries
    resumed = ChainMakerReader(again, cursor)
    new, _ = resumed.poll()
    assert [(e.seq, e.signed_tx[:1], len(e.signed_tx)) for e in new] == [(3, b"d", MAX_ENTRY_BYTES)]
    assert resumed.poll() == ([], [])
    too_big = b"x" * (MAX_ENTRY_BYTES + 1)
    with pytest.raises(ChainMakerError, match="larger than a ChainMaker contract event"):
        again.split([too_big], 10)
    with pytest.raises(ChainMakerError, match="failed on the chain: CONTRACT_FAIL: event data too long"):
        again._call("append", contract=name, entries=[base64.b64encode(too_big).decode()], timeout_s=10)
    assert again.count() == 4  # the node refused it whole, as ChainMaker does
    forged = ChainMakerReader(again, Cursor(cursor.block_number, "00" * 32))
    with pytest.raises(ChainMakerError, match="serves another chain"):
        forged.poll()
    again.close()


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _client_config(net: ChainMakerNet, tmp: Path, cert: bytes, key: bytes) -> Path:
    """Org 1's sdk_config.yml with another signing certificate and key (its TLS identity kept)."""
    text = net.sdk_config(0).read_text()
    crt_old = next(line.split(": ", 1)[1] for line in text.splitlines() if "user_sign_crt_file_path" in line)
    key_old = next(line.split(": ", 1)[1] for line in text.splitlines() if "user_sign_key_file_path" in line)
    (tmp / "sign.crt").write_bytes(cert)
    (tmp / "sign.key").write_bytes(key)
    out = tmp / "sdk_config.yml"
    out.write_text(text.replace(crt_old, str(tmp / "sign.crt")).replace(key_old, str(tmp / "sign.key")))
    return out


def _lookalike(real: x509.Certificate) -> tuple[bytes, bytes]:
    """A certificate with ``real``'s subject and issuer names, issued by a CA key the chain does not know."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(real.subject)
        .issuer_name(real.issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem(key)


def test_forged_signatures_and_strangers_are_refused_with_chainmakers_error(
    net: ChainMakerNet, tmp_path: Path
) -> None:
    name = _name()
    net.deploy(name, TAG).close()
    text = net.sdk_config(0).read_text()
    own_cert = Path(next(ln.split(": ", 1)[1] for ln in text.splitlines() if "user_sign_crt" in ln))
    stolen = own_cert.read_bytes()  # org 1's real certificate, signed with a key that is not its own
    wrong_key = key_pem(ec.generate_private_key(ec.SECP256R1()))
    (tmp_path / "forged").mkdir()
    forged = ChainMakerLog(_client_config(net, tmp_path / "forged", stolen, wrong_key), name)
    with pytest.raises(ChainMakerError, match=r"tx verify failed.*signature of member .* is invalid"):
        forged.append([b"forged"])
    forged.close()

    cert, key = _lookalike(x509.load_pem_x509_certificate(stolen))  # same names, a CA the chain never saw
    (tmp_path / "stranger").mkdir()
    stranger = ChainMakerLog(_client_config(net, tmp_path / "stranger", cert, key), name)
    with pytest.raises(ChainMakerError, match=r"tx verify failed.*not issued by org \[wx-org1"):
        stranger.append([b"stranger"])
    stranger.close()

    head, _, rest = net.admin_config.read_text().partition("  endorsers:\n")
    one_admin = tmp_path / "one_admin.yml"  # one org's admin endorses; the policy needs a majority
    one_admin.write_text(head + "  endorsers:\n  - org_id:" + rest.split("  - org_id:")[1])
    with pytest.raises(ChainMakerError, match="not enough participants: 1 org admins endorsed"):
        ChainMakerLog.deploy(one_admin, _name(), TAG, timeout_s=5)
    client = ChainMakerLog(net.sdk_config(0), name)
    assert client.count() == 0  # nothing of theirs reached the log
    client.close()


def _genesis(contract: str, chain: str = "chain1") -> tuple[Genesis, Identity, dict[str, Identity], Identity]:
    genesis, orderer, admins = make_genesis()
    bank_node = Identity.generate()
    doc = genesis.model_dump(mode="json")
    doc["orgs"][0]["node_public_key"] = bank_node.public_hex
    doc["ledger"] = {"backend": "chainmaker", "chainmaker": {"chain_id": chain, "contract_name": contract}}
    return Genesis.model_validate(doc), orderer, admins, bank_node


def test_another_consortiums_log_another_chain_or_an_embedded_genesis_is_refused(net: ChainMakerNet) -> None:
    name = _name()
    net.deploy(name, log_tag("another-chain")).close()
    genesis, orderer, _, _ = _genesis(name)
    with pytest.raises(ChainMakerError, match="belongs to another consortium"):
        ChainMakerBackend(genesis=genesis, orderer_identity=orderer, sdk_config=net.sdk_config(0))
    other_chain, orderer2, _, _ = _genesis(name, chain="chain2")
    with pytest.raises(ChainMakerError, match="reaches ChainMaker chain 'chain1'"):
        ChainMakerBackend(genesis=other_chain, orderer_identity=orderer2, sdk_config=net.sdk_config(0))
    missing, orderer3, _, _ = _genesis(_name())
    with pytest.raises(ChainMakerError, match=r"is the ConfideLog contract .* deployed"):
        ChainMakerBackend(genesis=missing, orderer_identity=orderer3, sdk_config=net.sdk_config(0))
    embedded, orderer4, _ = make_genesis()
    with pytest.raises(LedgerError, match="embedded"):
        ChainMakerBackend(genesis=embedded, orderer_identity=orderer4, sdk_config=net.sdk_config(0))


def test_two_nodes_derive_the_same_blocks_from_one_chainmaker_log(net: ChainMakerNet, tmp_path: Path) -> None:
    name = _name()
    genesis, orderer, admins, bank_node = _genesis(name)
    net.deploy(name, log_tag(genesis.chain_id)).close()
    clock = FakeClock()

    def unit(org: str, u: str):  # type: ignore[no-untyped-def]
        return build_tx(
            admins[org], genesis.chain_id, "unit.create", {"unit": u, "name": u}, created_at=clock.now
        )

    a = ChainMakerBackend(
        genesis=genesis, orderer_identity=orderer, sdk_config=net.sdk_config(0), path=tmp_path / "a.sqlite"
    )
    b = ChainMakerBackend(
        genesis=genesis, orderer_identity=bank_node, sdk_config=net.sdk_config(1), path=tmp_path / "b.sqlite"
    )
    receipts = a.submit_many([unit("bank", f"u{i}") for i in range(3)])
    assert all(not isinstance(r, Exception) for r in receipts)
    r = b.submit(unit("tax", "t1"))
    dup = b.submit_many([unit("tax", "t1")])  # refused by admission: never appended
    assert isinstance(dup[0], Exception)
    assert a.head().height == b.head().height == 2
    blocks_a, blocks_b = a.blocks_since(-1), b.blocks_since(-1)
    assert len(blocks_a) == 3 and blocks_a[0].header.anchor == f"chainmaker:chain1/{name}"
    for x, y in zip(blocks_a, blocks_b, strict=True):
        assert x.header_bytes == y.header_bytes  # the same header bytes, signed by different nodes
        assert x.signature != y.signature
    assert a.db.state_root(genesis.crypto) == b.db.state_root(genesis.crypto)
    assert verify_proof(genesis, a.proof(r.tx_id)) and verify_proof(genesis, b.proof(r.tx_id))

    again_u0 = unit("bank", "u0")  # the same unit again: the contract refuses it
    a.log.append([b"not a signed tx", encode_entry(again_u0)])  # appended by someone who skipped admission
    assert a.head().height == 3 and b.head().height == 3
    (block,) = b.blocks_since(2)
    assert len(block.txs) == 1  # the junk bytes were skipped
    row = b.db.find_tx(again_u0.tx_id(genesis.crypto))
    assert row is not None and row["code"] != 0 and "exists" in row["reason"]
    a.close()
    again = ChainMakerBackend(
        genesis=genesis, orderer_identity=orderer, sdk_config=net.sdk_config(0), path=tmp_path / "a.sqlite"
    )
    assert again.head().height == 3 and again.db.state_root(genesis.crypto) == b.db.state_root(genesis.crypto)
    again.submit(unit("power", "p1"))
    assert again.head().height == 4 and b.head().height == 4
    assert again.blocks_since(3)[0].header_bytes == b.blocks_since(3)[0].header_bytes
    again.close()

    replica, lock = Replica(ChainDB(":memory:"), genesis), threading.RLock()  # an org node's link (org 3)
    node = ChainMakerNodeLedger(
        genesis=genesis, identity=bank_node, replica=replica, lock=lock, sdk_config=net.sdk_config(2)
    )

    def follow() -> None:  # what the node's follower does
        with lock:
            for block in node.blocks_since(replica.height):
                replica.apply_block(block)

    node.nudge = follow
    receipt = node.submit(unit("power", "p2"))  # catches up (4 blocks), admits, appends, waits
    assert receipt.height == 5 and b.head().height == 5
    ours, theirs = replica.db.blocks_since(-1, 10), b.blocks_since(-1, 10)
    assert [x.header_bytes for x in ours] == [y.header_bytes for y in theirs]
    node.close()
    b.close()


def test_consortium_init_deploys_the_log_and_writes_each_nodes_sdk_config(
    net: ChainMakerNet, tmp_path: Path
) -> None:
    from confide.ledger.genesis import load_genesis
    from confide.node.config import load_node_config
    from confide.node.consortium import OrgEntry, init_consortium

    orgs = [OrgEntry("bank", "Bank"), OrgEntry("tax", "Tax")]
    configs = [net.sdk_config(0), net.sdk_config(1)]
    kw = {"tls": False, "tee": False, "ledger": "chainmaker", "chainmaker_chain_id": net.chain_id}
    with pytest.raises(LedgerError, match="each org's sdk_config"):  # no admin config: nothing written
        init_consortium(tmp_path / "bad", orgs, chainmaker_configs=configs, **kw)
    assert not (tmp_path / "bad").exists()
    contract = f"init_{secrets.token_hex(4)}"
    init_consortium(
        tmp_path / "c", orgs, chain_id="cm-one", chainmaker_configs=configs,
        chainmaker_admin_config=net.admin_config, chainmaker_contract=contract, **kw,
    )  # fmt: skip
    genesis = load_genesis(tmp_path / "c" / "genesis.json")
    assert genesis.ledger.backend == "chainmaker" and genesis.ledger.chainmaker.contract_name == contract
    cfg = load_node_config(tmp_path / "c" / "tax")
    assert cfg.chainmaker_sdk_config == configs[1].resolve() and cfg.orderer_url is None
    log = open_log(genesis, cfg.chainmaker_sdk_config)  # deployed, bound to this consortium's tag
    log.close()
