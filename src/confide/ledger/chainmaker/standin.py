"""A protocol-level stand-in of a ChainMaker node, built from the official SDK's own generated protos.

No ChainMaker network runs on this machine, so the ``chainmaker`` backend is tested against this: one
process in ChainMaker's venv (``.chainmaker-venv``; it imports the SDK's generated ``api.RpcNode``
service and ``common`` messages, never Confide) that serves what the official Python SDK sends, over
mutual TLS, and does in one place what a ChainMaker node's RPC server, transaction pool, proposer,
EVM runtime and store do for one chain:

* **Certificates**: at start-up it makes a CA per org, each org's client TLS and signing
  certificates, an admin signing certificate and the node's TLS and signing certificates (ECDSA
  P-256, ``O=<org>``, ``OU=<role>`` as ChainMaker's ``cert`` mode reads roles), in ChainMaker's
  ``crypto-config`` layout, and one ``sdk_config.yml`` per org (plus an admin one whose endorsers are
  every org's admin, for deploying a contract).
* **SendRequest**: verifies a request as ChainMaker's ``VerifyTxWithoutPayload`` does: chain id, tx id
  format, tx timestamp within ``tx_timeout`` of this node's clock, and the sender's signature over the
  serialized payload by a certificate issued by the CA of the org it claims (the SDK's own
  ``cert`` member type); contract management (``CONTRACT_MANAGE``) needs valid endorsements by admins
  of a majority of the orgs (ChainMaker's default ``MAJORITY`` policy). A refused request gets
  ChainMaker's answer: ``INTERNAL_ERROR`` and ``tx verify failed, verify tx authentation failed,
  ...``, which the SDK turns into its ``AuthenticationError`` family.
* **Blocks**: accepted invoke transactions wait in a pool; blocks are cut every ``block_interval_ms``
  (at most ``block_tx_capacity`` each), executed in order, hashed (SHA-256 of the header without hash
  and signature) and signed by the node's key. Queries run against the last block's state.
* **EVM**: ``INIT_CONTRACT`` with runtime ``EVM`` runs the constructor (bytecode ‖ ABI arguments, as
  the SDK packs them) and ``invoke`` runs a method (``data`` = selector ‖ ABI arguments) for real, in
  py-evm (Paris rules: ``ConfideLog.json`` is compiled for ``paris``), at the address ChainMaker 2.3+
  gives a contract name (``name2addr``). Each EVM log becomes a ChainMaker ``ContractEvent`` exactly as
  ChainMaker's EVM runtime writes it: ``topic`` = hex of the first topic, ``event_data`` = hex of the
  other topics then hex of the data, at most 65535 hex characters (else the transaction fails, as on
  ChainMaker).
* **Queries**: ``CHAIN_QUERY`` (last block, block by height / hash, header, tx by id, chain info),
  ``CHAIN_CONFIG.GET_CHAIN_CONFIG``, ``CONTRACT_MANAGE.GET_CONTRACT_INFO``, and EVM view calls.

What it does not do: consensus or a second node (one process orders, executes and commits; a real
chain runs TBFT/Raft among several orgs' consensus nodes), persistence (the chain lives in memory for
the process's life), subscriptions (``Subscribe`` answers UNIMPLEMENTED), read/write sets and
ChainMaker's exact tx-root and DAG rules, gas accounting (gas is not enabled, as on a default chain),
other VMs (WASM, Docker-Go), other system contracts (chain config updates, certificate management,
multi-sign), public-key or DID members, SM2/SM3. The tx pool accepts every verified request up to its
size; nothing is dropped.

Run: ``<.chainmaker-venv python> -I standin.py CONFIG.json`` (``scenarios/chainmakerchain.py`` writes the
config and waits for ``ready.json`` in the work folder).
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import json
import os
import re
import signal
import sys
import threading
import time
import traceback
import warnings
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import yaml
from chainmaker.protos.accesscontrol import member_pb2
from chainmaker.protos.api import rpc_node_pb2_grpc
from chainmaker.protos.common import block_pb2, contract_pb2, request_pb2, result_pb2, transaction_pb2
from chainmaker.protos.config import chain_config_pb2, chainmaker_server_pb2
from chainmaker.protos.consensus import consensus_pb2
from chainmaker.protos.discovery import discovery_pb2
from chainmaker.utils import address_utils
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from eth.constants import BLANK_ROOT_HASH, CREATE_CONTRACT_ADDRESS
from eth.db.atomic import AtomicDB
from eth.vm.execution_context import ExecutionContext
from eth.vm.forks.paris.state import ParisState
from eth.vm.message import Message
from eth.vm.transaction_context import BaseTransactionContext

__all__ = ["Chain", "main"]

VERSION = "v3.0.0 (Confide protocol stand-in: one node, no consensus)"
BLOCK_VERSION = 3000000
TX_ID = re.compile(r"^[a-zA-Z0-9_]{1,64}$")
TX_TIMEOUT_S = 600  # ChainMaker's default block.tx_timeout
EVENT_DATA_MAX_LEN = 65535  # hex characters (ChainMaker's protocol.EventDataMaxLen)
GAS_LIMIT = 10_000_000_000  # ChainMaker's protocol.GasLimit for one transaction
ADDR_TYPE_ETHEREUM = 2
S = result_pb2.TxStatusCode
CERT = member_pb2.MemberType.Value("CERT")
EVM = contract_pb2.RuntimeType.Value("EVM")


class Refused(Exception):
    """A request this node answers with a ChainMaker error (``code``, ``message``)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class ContractError(Exception):
    """A contract call that failed (ChainMaker: ``CONTRACT_FAIL``, contract result code 1)."""


# -- certificates -------------------------------------------------------------------------------------
def _name(cn: str, org: str, role: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write(path: Path, data: bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(0o600)
    return str(path)


def _issue(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None, cn: str, org: str, role: str, tls: bool
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    subject = _name(cn, org, role)
    issuer, signer = (subject, key) if ca is None else (ca[0].subject, ca[1])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650 if ca is None else 365))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if ca is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    if tls:
        names: list[x509.GeneralName] = [
            x509.DNSName("chainmaker.org"),
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(signer, hashes.SHA256()), key


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class Crypto:
    """The chain's trust roots and the node's keys; paths of what was written for the clients."""

    cas: dict[str, x509.Certificate]
    node_tls: tuple[bytes, bytes]  # (cert PEM, key PEM)
    node_sign: tuple[x509.Certificate, ec.EllipticCurvePrivateKey]
    files: dict[str, dict[str, str]]  # org -> role -> path


def make_crypto(root: Path, orgs: list[str]) -> Crypto:
    """ChainMaker's ``crypto-config`` layout under ``root``: ``<org>/ca``, ``<org>/user/{client1,admin1}``,
    ``<org>/node/consensus1`` (the node's keys; the node belongs to the first org)."""
    cas: dict[str, x509.Certificate] = {}
    files: dict[str, dict[str, str]] = {}
    node_tls: tuple[bytes, bytes] | None = None
    node_sign = None
    for i, org in enumerate(orgs):
        base = root / "crypto-config" / org
        ca = _issue(None, f"ca.{org}", org, "root", tls=False)
        cas[org] = ca[0]
        f = files[org] = {"ca_dir": str(base / "ca"), "ca": _write(base / "ca" / "ca.crt", _cert_pem(ca[0]))}
        _write(base / "ca" / "ca.key", _pem_key(ca[1]))
        for who, role, kind in (
            ("client1", "client", "tls"),
            ("client1", "client", "sign"),
            ("admin1", "admin", "sign"),
        ):
            cert, key = _issue(ca, f"{who}.{kind}.{org}", org, role, tls=kind == "tls")
            d = base / "user" / who
            f[f"{who}.{kind}.crt"] = _write(d / f"{who}.{kind}.crt", _cert_pem(cert))
            f[f"{who}.{kind}.key"] = _write(d / f"{who}.{kind}.key", _pem_key(key))
        if i == 0:
            d = base / "node" / "consensus1"
            cert, key = _issue(ca, f"consensus1.tls.{org}", org, "consensus", tls=True)
            _write(d / "consensus1.tls.crt", _cert_pem(cert))
            node_tls = (_cert_pem(cert), _pem_key(key))
            node_sign = _issue(ca, f"consensus1.sign.{org}", org, "consensus", tls=False)
            _write(d / "consensus1.sign.crt", _cert_pem(node_sign[0]))
    assert node_tls is not None and node_sign is not None
    return Crypto(cas, node_tls, node_sign, files)


def write_sdk_configs(root: Path, chain_id: str, endpoint: str, crypto: Crypto) -> dict[str, str]:
    """One ``sdk_config.yml`` per org (its client1), and ``admin``: org 1's admin signing, with every
    org's admin as an endorser (what ``CONTRACT_MANAGE`` needs). Returns org (or "admin") -> path."""
    trust = [crypto.files[o]["ca_dir"] for o in crypto.cas]
    node = {
        "node_addr": endpoint,
        "conn_cnt": 1,
        "enable_tls": True,
        "trust_root_paths": trust,
        "tls_host_name": "chainmaker.org",
    }

    def client(org: str, signer: str) -> dict[str, Any]:
        f = crypto.files[org]
        return {
            "chain_id": chain_id,
            "org_id": org,
            "user_key_file_path": f["client1.tls.key"],
            "user_crt_file_path": f["client1.tls.crt"],
            "user_sign_key_file_path": f[f"{signer}.sign.key"],
            "user_sign_crt_file_path": f[f"{signer}.sign.crt"],
            "crypto": {"hash": "SHA256"},
            "auth_type": "permissionedWithCert",
            "retry_limit": 20,
            "retry_interval": 500,
            "nodes": [node],
            "rpc_client": {"max_receive_message_size": 100, "max_send_message_size": 100},
        }

    out: dict[str, str] = {}
    for org in crypto.cas:
        path = root / f"sdk_config_{org}.yml"
        path.write_text(yaml.safe_dump({"chain_client": client(org, "client1")}, sort_keys=False))
        out[org] = str(path)
    first = next(iter(crypto.cas))
    admin = client(first, "admin1")
    admin["endorsers"] = [
        {
            "org_id": org,
            "user_sign_key_file_path": crypto.files[org]["admin1.sign.key"],
            "user_sign_crt_file_path": crypto.files[org]["admin1.sign.crt"],
            "crypto": {"hash": "SHA256"},
            "auth_type": "permissionedWithCert",
        }
        for org in crypto.cas
    ]
    path = root / "sdk_config_admin.yml"
    path.write_text(yaml.safe_dump({"chain_client": admin}, sort_keys=False))
    out["admin"] = str(path)
    return out


# -- the chain ----------------------------------------------------------------------------------------
@dataclass
class Signer:
    org: str
    role: str  # CLIENT, ADMIN, CONSENSUS, ... (the certificate's OU, upper case)
    cert: x509.Certificate


@dataclass
class UserContract:
    name: str
    version: str
    address: bytes
    creator: member_pb2.Member


def _params(payload: request_pb2.Payload) -> dict[str, bytes]:
    return {kv.key: bytes(kv.value) for kv in payload.parameters}


def _flag(raw: bytes | None) -> bool:
    return (raw or b"").strip().lower() in (b"1", b"t", b"true")


def _height(raw: bytes | None) -> int:
    try:
        return int((raw or b"").decode())
    except ValueError:
        raise ContractError(f"invalid block height {raw!r}") from None


def _hexdata(raw: bytes | None) -> bytes:
    text = (raw or b"").decode("ascii", "replace").strip()
    text = text[2:] if text.startswith("0x") else text
    try:
        return bytes.fromhex(text if len(text) % 2 == 0 else "0" + text)
    except ValueError:
        raise ContractError("params is not hex encode string") from None


def _merkle(leaves: list[bytes]) -> bytes:
    level = [hashlib.sha256(x).digest() for x in leaves] or [hashlib.sha256(b"").digest()]
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        level = [hashlib.sha256(level[i] + level[i + 1]).digest() for i in range(0, len(level), 2)]
    return level[0]


class Chain:
    """One chain: trust roots, tx pool, blocks, contracts and EVM state; every method under ``lock``."""

    def __init__(self, chain_id: str, crypto: Crypto, start_ms: int | None, capacity: int) -> None:
        self.chain_id, self.crypto, self.capacity = chain_id, crypto, capacity
        self.lock = threading.RLock()
        self.wake = threading.Condition(self.lock)
        self.pool: list[transaction_pb2.Transaction] = []
        self.known: set[str] = set()  # tx ids in the pool or on the chain
        self.blocks: list[block_pb2.Block] = []
        self.by_hash: dict[bytes, int] = {}
        self.tx_at: dict[str, tuple[int, int]] = {}
        self.contracts: dict[str, UserContract] = {}
        self.db = AtomicDB()
        self._state_root: bytes = BLANK_ROOT_HASH  # the EVM world state after the last block
        self._start_ms, self._t0 = start_ms, time.monotonic()
        self._last_ts = 0
        self._cut(())  # the genesis block (height 0)

    # -- time ---------------------------------------------------------------------------------------
    def _clock_s(self) -> int:
        """Block time (s): the wall clock, or ``start_ms`` plus the time since start (tests)."""
        if self._start_ms is None:
            now = int(time.time())
        else:
            now = int((self._start_ms + (time.monotonic() - self._t0) * 1000) // 1000)
        self._last_ts = max(self._last_ts, now)
        return self._last_ts

    # -- verification (ChainMaker's VerifyTxWithoutPayload) -----------------------------------------------
    def _signer(self, entry: request_pb2.EndorsementEntry, payload_bytes: bytes) -> Signer:
        m = entry.signer
        if m.member_type != CERT:
            name = {v: k for k, v in member_pb2.MemberType.items()}.get(m.member_type, str(m.member_type))
            raise ValueError(f"member type {name} is not supported by this stand-in (cert mode only)")
        try:
            cert = x509.load_pem_x509_certificate(bytes(m.member_info))
        except ValueError:
            raise ValueError("the member's certificate cannot be parsed") from None
        ca = self.crypto.cas.get(m.org_id)
        if ca is None:
            raise ValueError(f"org [{m.org_id}] is not a trust root of chain [{self.chain_id}]")
        try:
            if cert.issuer != ca.subject:
                raise InvalidSignature
            ca_key = ca.public_key()
            assert isinstance(ca_key, ec.EllipticCurvePublicKey)
            assert cert.signature_hash_algorithm is not None
            ca_key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
        except (InvalidSignature, AssertionError):
            raise ValueError(
                f"certificate [{cert.subject.rfc4514_string()}] is not issued by org [{m.org_id}]'s CA"
            ) from None
        now = datetime.datetime.now(datetime.UTC)
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise ValueError("the member's certificate is expired or not yet valid")
        pub = cert.public_key()
        try:
            assert isinstance(pub, ec.EllipticCurvePublicKey) and cert.signature_hash_algorithm is not None
            pub.verify(bytes(entry.signature), payload_bytes, ec.ECDSA(cert.signature_hash_algorithm))
        except (InvalidSignature, AssertionError):
            raise ValueError(f"signature of member [{cert.subject.rfc4514_string()}] is invalid") from None
        ous = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
        return Signer(m.org_id, str(ous[0].value).upper() if ous else "", cert)

    def verify(self, tx: transaction_pb2.Transaction) -> Signer:
        p = tx.payload
        if p.chain_id != self.chain_id:
            raise Refused(
                S.INTERNAL_ERROR,
                f"tx verify failed, verify tx header failed, chain id [{p.chain_id}] is incorrect, "
                f"wanted [{self.chain_id}], txId:{p.tx_id}",
            )
        if len(p.tx_id) > 64 or (p.tx_type == request_pb2.INVOKE_CONTRACT and not TX_ID.match(p.tx_id)):
            raise Refused(
                S.INTERNAL_ERROR,
                "tx verify failed, verify tx header failed, check tx id failed, only [a-zA-Z0-9_] "
                f"are allowed, your TxId is:{p.tx_id}",
            )
        if abs(p.timestamp - time.time()) > TX_TIMEOUT_S:
            raise Refused(
                S.INTERNAL_ERROR,
                f"tx verify failed, tx timestamp {p.timestamp} is more than {TX_TIMEOUT_S} s away from "
                f"this node's clock, txId:{p.tx_id}",
            )
        payload_bytes = p.SerializeToString()
        sender = tx.sender.signer.member_info
        try:
            who = self._signer(tx.sender, payload_bytes)
        except ValueError as exc:
            raise Refused(
                S.INTERNAL_ERROR,
                f"tx verify failed, verify tx authentation failed, authentication error: {exc}, "
                f"txId:{p.tx_id}, sender:{bytes(sender).hex()}",
            ) from None
        if p.tx_type == request_pb2.INVOKE_CONTRACT and p.contract_name == "CONTRACT_MANAGE":
            self._majority_of_admins(tx, payload_bytes)
        return who

    def _majority_of_admins(self, tx: transaction_pb2.Transaction, payload_bytes: bytes) -> None:
        resource = f"{tx.payload.contract_name}-{tx.payload.method}"
        orgs: set[str] = set()
        errors: list[str] = []
        for e in tx.endorsers or [tx.sender]:
            try:
                s = self._signer(e, payload_bytes)
            except ValueError as exc:
                errors.append(str(exc))
                continue
            if s.role == "ADMIN":
                orgs.add(s.org)
        need = len(self.crypto.cas) // 2 + 1
        if len(orgs) < need:
            why = "; ".join(errors) or "endorsers are not admins of enough orgs"
            raise Refused(
                S.INTERNAL_ERROR,
                f"tx verify failed, verify tx authentation failed, authentication error for {resource}: "
                f"not enough participants: {len(orgs)} org admins endorsed, the MAJORITY policy needs "
                f"{need} ({why}), txId:{tx.payload.tx_id}",
            )

    # -- the RPC's work --------------------------------------------------------------------------------
    def send(self, req: request_pb2.TxRequest) -> result_pb2.TxResponse:
        tx = transaction_pb2.Transaction(payload=req.payload, sender=req.sender, endorsers=req.endorsers)
        tx_id = req.payload.tx_id
        try:
            who = self.verify(tx)
            if req.payload.tx_type == request_pb2.QUERY_CONTRACT:
                with self.lock:
                    return self._query(req.payload, who)
            if req.payload.tx_type != request_pb2.INVOKE_CONTRACT:
                raise Refused(S.INTERNAL_ERROR, "unsupport tx_type (this stand-in serves invoke and query)")
            with self.lock:
                if tx_id in self.known:
                    raise Refused(S.INTERNAL_ERROR, f"tx add failed, tx duplicate, txId:{tx_id}")
                self.known.add(tx_id)
                self.pool.append(tx)
                self.wake.notify_all()
        except Refused as r:
            return result_pb2.TxResponse(code=r.code, message=r.message, tx_id=tx_id)
        return result_pb2.TxResponse(code=S.SUCCESS, message="OK", tx_id=tx_id)

    def _ok(self, tx_id: str, result: bytes) -> result_pb2.TxResponse:
        return result_pb2.TxResponse(
            code=S.SUCCESS,
            message="SUCCESS",
            tx_id=tx_id,
            contract_result=result_pb2.ContractResult(code=0, result=result, message="OK"),
        )

    def _query(self, p: request_pb2.Payload, who: Signer) -> result_pb2.TxResponse:
        params = _params(p)
        try:
            if p.contract_name == "CHAIN_QUERY":
                return self._ok(p.tx_id, self._chain_query(p.method, params))
            if p.contract_name == "CHAIN_CONFIG" and p.method == "GET_CHAIN_CONFIG":
                return self._ok(p.tx_id, self._chain_config().SerializeToString())
            if p.contract_name == "CONTRACT_MANAGE" and p.method == "GET_CONTRACT_INFO":
                c = self._contract(params.get("CONTRACT_NAME", b"").decode())
                return self._ok(p.tx_id, json.dumps(self._contract_json(c)).encode())
            try:
                c = self._contract(p.contract_name)
            except ContractError as exc:  # ChainMaker: the store's error, as INTERNAL_ERROR
                return result_pb2.TxResponse(code=S.INTERNAL_ERROR, message=str(exc), tx_id=p.tx_id)
            out, _, _ = self._evm_call(c, p.method, params, who, commit=False, tx_id=p.tx_id)
            return self._ok(p.tx_id, out)
        except ContractError as exc:
            return result_pb2.TxResponse(
                code=S.CONTRACT_FAIL,
                message="CONTRACT_FAIL",
                tx_id=p.tx_id,
                contract_result=result_pb2.ContractResult(code=1, message=str(exc)),
            )

    def _chain_query(self, method: str, params: dict[str, bytes]) -> bytes:
        with_rw = _flag(params.get("withRWSet"))
        if method == "GET_LAST_BLOCK":
            return self._block_info(len(self.blocks) - 1, with_rw)
        if method == "GET_BLOCK_BY_HEIGHT":
            return self._block_info(_height(params.get("blockHeight")), with_rw)
        if method == "GET_BLOCK_HEADER_BY_HEIGHT":
            return bytes(self._block(_height(params.get("blockHeight"))).header.SerializeToString())
        if method in ("GET_BLOCK_BY_HASH", "GET_BLOCK_HEIGHT_BY_HASH"):
            try:
                h = self.by_hash[bytes.fromhex(params.get("blockHash", b"").decode())]
            except (KeyError, ValueError):
                raise ContractError("no such block hash on this chain") from None
            return str(h).encode() if method.endswith("HEIGHT_BY_HASH") else self._block_info(h, with_rw)
        if method in ("GET_TX_BY_TX_ID", "GET_BLOCK_HEIGHT_BY_TX_ID", "GET_BLOCK_BY_TX_ID"):
            tx_id = params.get("txId", b"").decode()
            if tx_id not in self.tx_at:
                raise ContractError(f"no such transaction, chainId:{self.chain_id}, txId:{tx_id}")
            height, idx = self.tx_at[tx_id]
            if method == "GET_BLOCK_HEIGHT_BY_TX_ID":
                return str(height).encode()
            if method == "GET_BLOCK_BY_TX_ID":
                return self._block_info(height, with_rw)
            b = self.blocks[height]
            info = transaction_pb2.TransactionInfo(
                transaction=b.txs[idx],
                block_height=height,
                block_hash=b.header.block_hash,
                tx_index=idx,
                block_timestamp=b.header.block_timestamp,
            )
            return bytes(info.SerializeToString())
        if method == "GET_CHAIN_INFO":
            node = discovery_pb2.Node(node_id="consensus1")
            chain = discovery_pb2.ChainInfo(block_height=len(self.blocks) - 1, node_list=[node])
            return bytes(chain.SerializeToString())
        if method == "GET_ARCHIVED_BLOCK_HEIGHT":
            return b"0"
        raise ContractError(f"method [{method}] of CHAIN_QUERY is not served by this stand-in")

    def _block(self, height: int) -> block_pb2.Block:
        if not 0 <= height < len(self.blocks):
            raise ContractError(f"no such block, chainId:{self.chain_id}, height:{height}")
        return self.blocks[height]

    def _block_info(self, height: int, with_rw: bool) -> bytes:
        info = block_pb2.BlockInfo(block=self._block(height))
        return bytes(info.SerializeToString())  # read/write sets are not kept (with_rw: none)

    def _chain_config(self) -> chain_config_pb2.ChainConfig:
        return chain_config_pb2.ChainConfig(
            chain_id=self.chain_id,
            version="3.0.0",
            auth_type="permissionedWithCert",
            crypto=chain_config_pb2.CryptoConfig(hash="SHA256"),
            block=chain_config_pb2.BlockConfig(
                tx_timestamp_verify=True, tx_timeout=TX_TIMEOUT_S, block_tx_capacity=self.capacity
            ),
            consensus=chain_config_pb2.ConsensusConfig(type=consensus_pb2.ConsensusType.Value("SOLO")),
            trust_roots=[
                chain_config_pb2.TrustRootConfig(org_id=o, root=[_cert_pem(c).decode()])
                for o, c in self.crypto.cas.items()
            ],
            account_config=chain_config_pb2.GasAccountConfig(enable_gas=False),
            vm=chain_config_pb2.Vm(support_list=["evm"], addr_type=ADDR_TYPE_ETHEREUM),
        )

    # -- contracts ----------------------------------------------------------------------------------------
    def _contract(self, name_or_address: str) -> UserContract:
        key = name_or_address.lower().removeprefix("0x")
        for c in self.contracts.values():
            if name_or_address == c.name or key == c.address.hex():
                return c
        raise ContractError(f"contract [{name_or_address}] does not exist")

    @staticmethod
    def _contract_json(c: UserContract) -> dict[str, Any]:
        return {
            "name": c.name,
            "version": c.version,
            "runtime_type": EVM,
            "status": 0,
            "creator": {"org_id": c.creator.org_id, "member_type": c.creator.member_type},
            "address": c.address.hex(),
        }

    def _state(self, height: int, timestamp: int) -> ParisState:
        return ParisState(self.db, self._context(height, timestamp), self._state_root)

    @staticmethod
    def _context(height: int, timestamp: int) -> ExecutionContext:
        return ExecutionContext(
            coinbase=b"\0" * 20,
            timestamp=timestamp,
            block_number=height,
            difficulty=0,
            mix_hash=b"\0" * 32,
            gas_limit=GAS_LIMIT,
            prev_hashes=(),
            chain_id=1,
            base_fee_per_gas=0,
        )

    def _evm_call(
        self,
        c: UserContract,
        method: str,
        params: dict[str, bytes],
        who: Signer,
        *,
        commit: bool,
        tx_id: str,
        state: ParisState | None = None,
    ) -> tuple[bytes, int, list[result_pb2.ContractEvent]]:
        """Run a method of ``c`` (ChainMaker's EVM runtime: method = 8 hex selector characters, ``data`` =
        the whole calldata); (output, gas used, events). Without ``commit`` nothing is kept."""
        m = method.removeprefix("0x")
        if len(m) != 8:
            raise ContractError("contract verify failed, method length is not 8")
        data = _hexdata(params.get("data"))
        st = state or self._state(len(self.blocks) - 1, self.blocks[-1].header.block_timestamp)
        snap = st.snapshot()
        sender = self._address(who)
        msg = Message(
            gas=GAS_LIMIT, to=c.address, sender=sender, value=0, data=data, code=st.get_code(c.address)
        )
        comp = st.computation_class.apply_message(st, msg, BaseTransactionContext(gas_price=0, origin=sender))
        try:
            if comp.is_error:
                raise ContractError(f"failed to execute evm contract, {comp.error!r}")
            events = self._events(comp, tx_id)
        except ContractError:
            st.revert(snap)
            raise
        if commit:
            st.commit(snap)
        else:
            st.revert(snap)
        return bytes(comp.output), int(comp.get_gas_used()), events

    def _events(self, comp: Any, tx_id: str) -> list[result_pb2.ContractEvent]:
        names = {c.address: c for c in self.contracts.values()}
        out = []
        for address, topics, data in comp.get_log_entries():
            c = names.get(bytes(address))
            ev = result_pb2.ContractEvent(
                tx_id=tx_id,
                contract_name=c.name if c else bytes(address).hex(),
                contract_version=c.version if c else "",
            )
            for i, t in enumerate(topics):
                h = int(t).to_bytes(32, "big").hex()
                if i == 0:
                    ev.topic = h
                else:
                    ev.event_data.append(h)
            data_hex = bytes(data).hex()
            if len(data_hex) > EVENT_DATA_MAX_LEN:
                raise ContractError(f"event data too long,longer than {EVENT_DATA_MAX_LEN}")
            ev.event_data.append(data_hex)
            out.append(ev)
        return out

    @staticmethod
    def _address(who: Signer) -> bytes:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hexaddr = address_utils.get_evm_address_from_public_key(who.cert.public_key())
        return bytes.fromhex(hexaddr.removeprefix("0x"))

    def _init_contract(
        self, tx: transaction_pb2.Transaction, who: Signer, st: ParisState
    ) -> tuple[bytes, int, list[result_pb2.ContractEvent]]:
        params = _params(tx.payload)
        name = params.get("CONTRACT_NAME", b"").decode()
        version = params.get("CONTRACT_VERSION", b"").decode()
        runtime = params.get("CONTRACT_RUNTIME_TYPE", b"").decode()
        if not re.match(r"^[a-zA-Z0-9_]{1,128}$", name):
            raise ContractError(f"invalid contract name [{name}]")
        if runtime != "EVM":
            raise ContractError(f"runtime type [{runtime}] is not served by this stand-in (EVM only)")
        if any(c.name == name for c in self.contracts.values()):
            raise ContractError(f"contract [{name}] already exists")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            address = bytes.fromhex(address_utils.name2addr(name))
        code = params.get("CONTRACT_BYTECODE", b"") + _hexdata(params.get("data"))
        sender = self._address(who)
        snap = st.snapshot()
        msg = Message(
            gas=GAS_LIMIT, to=CREATE_CONTRACT_ADDRESS, sender=sender, value=0, data=b"", code=code,
            create_address=address,
        )  # fmt: skip
        ctx = BaseTransactionContext(gas_price=0, origin=sender)
        comp = st.computation_class.apply_create_message(st, msg, ctx)
        if comp.is_error:
            st.revert(snap)
            raise ContractError(f"contract initial fail, {comp.error!r}")
        contract = UserContract(name, version, address, tx.sender.signer)
        self.contracts[name] = contract  # before its events are named
        try:
            events = self._events(comp, tx.payload.tx_id)
        except ContractError:
            del self.contracts[name]
            st.revert(snap)
            raise
        st.commit(snap)
        m = tx.sender.signer
        creator = member_pb2.MemberFull(
            org_id=m.org_id, member_type=m.member_type, member_info=m.member_info, role=who.role
        )
        info = contract_pb2.Contract(
            name=name, version=version, runtime_type=EVM, creator=creator, address=address.hex()
        )
        return info.SerializeToString(), int(comp.get_gas_used()), events

    def _execute(self, tx: transaction_pb2.Transaction, st: ParisState) -> result_pb2.Result:
        p = tx.payload
        try:
            who = self._signer(tx.sender, p.SerializeToString())  # verified at SendRequest already
            if p.contract_name == "CONTRACT_MANAGE":
                if p.method != "INIT_CONTRACT":
                    raise ContractError(f"CONTRACT_MANAGE method [{p.method}] is not served by this stand-in")
                out, gas, events = self._init_contract(tx, who, st)
            else:
                out, gas, events = self._evm_call(
                    self._contract(p.contract_name), p.method, _params(p), who, commit=True,
                    tx_id=p.tx_id, state=st,
                )  # fmt: skip
        except Exception as exc:  # a failed contract (ContractError) or one py-evm refused to run
            return result_pb2.Result(
                code=S.CONTRACT_FAIL,
                message=str(exc),
                contract_result=result_pb2.ContractResult(code=1, message=str(exc)),
            )
        return result_pb2.Result(
            code=S.SUCCESS,
            message="SUCCESS",
            contract_result=result_pb2.ContractResult(
                code=0, result=out, message="OK", gas_used=gas, contract_event=events
            ),
        )

    # -- blocks -------------------------------------------------------------------------------------------
    def _cut(self, txs: tuple[transaction_pb2.Transaction, ...] | list[transaction_pb2.Transaction]) -> None:
        """Execute ``txs`` in order into the next block and append it (height 0: the genesis block)."""
        height = len(self.blocks)
        ts = self._clock_s()
        st = self._state(height, ts)
        done = []
        for tx in txs:
            done.append(
                transaction_pb2.Transaction(
                    payload=tx.payload, sender=tx.sender, endorsers=tx.endorsers, result=self._execute(tx, st)
                )
            )
        st.persist()
        self._state_root = st.state_root
        prev = self.blocks[-1].header.block_hash if self.blocks else b""
        node_cert, node_key = self.crypto.node_sign
        header = block_pb2.BlockHeader(
            block_version=BLOCK_VERSION,
            block_type=block_pb2.BlockType.Value("CONFIG_BLOCK" if height == 0 else "NORMAL_BLOCK"),
            chain_id=self.chain_id,
            block_height=height,
            pre_block_hash=prev,
            tx_count=len(done),
            tx_root=_merkle([t.SerializeToString() for t in done]),
            dag_hash=hashlib.sha256(block_pb2.DAG().SerializeToString()).digest(),
            block_timestamp=ts,
            proposer=member_pb2.Member(
                org_id=next(iter(self.crypto.cas)), member_type=CERT, member_info=_cert_pem(node_cert)
            ),
        )
        header.block_hash = hashlib.sha256(header.SerializeToString()).digest()
        header.signature = node_key.sign(header.block_hash, ec.ECDSA(hashes.SHA256()))
        block = block_pb2.Block(header=header, dag=block_pb2.DAG(), txs=done)
        self.blocks.append(block)
        self.by_hash[header.block_hash] = height
        for i, t in enumerate(done):
            self.tx_at[t.payload.tx_id] = (height, i)

    def run_proposer(self, interval_s: float, stop: threading.Event) -> None:
        """Cut a block whenever the pool has transactions, at most every ``interval_s``."""
        while not stop.is_set():
            with self.lock:
                while not self.pool and not stop.is_set():
                    self.wake.wait(0.5)
            if stop.is_set():
                return
            time.sleep(interval_s)  # let a burst gather into one block
            with self.lock:
                batch, self.pool = self.pool[: self.capacity], self.pool[self.capacity :]
                try:
                    self._cut(batch)
                except Exception:  # a bug here: stop loudly rather than serve a chain that stopped
                    traceback.print_exc()
                    sys.stdout.flush()
                    os._exit(3)


class RpcNode(rpc_node_pb2_grpc.RpcNodeServicer):  # type: ignore[misc]
    """The SDK's ``api.RpcNode`` service; methods not defined here answer UNIMPLEMENTED (the
    generated base class)."""

    def __init__(self, chain: Chain) -> None:
        self.chain = chain

    def SendRequest(self, request: request_pb2.TxRequest, context: Any) -> result_pb2.TxResponse:
        try:
            return self.chain.send(request)
        except Exception as exc:  # a stand-in bug: say so in ChainMaker's shape, and in its log
            traceback.print_exc()
            sys.stdout.flush()
            return result_pb2.TxResponse(
                code=S.INTERNAL_ERROR,
                message=f"the ChainMaker stand-in failed on this request: {type(exc).__name__}: {exc}",
                tx_id=request.payload.tx_id,
            )

    def GetChainMakerVersion(self, request: Any, context: Any) -> Any:
        return chainmaker_server_pb2.ChainMakerVersionResponse(code=0, version=VERSION)

    def Subscribe(self, request: Any, context: Any) -> Any:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "subscriptions are not served by this stand-in")


def serve(config: dict[str, Any]) -> None:
    root = Path(config["root"])
    root.mkdir(parents=True, exist_ok=True)
    orgs = [str(o) for o in config["orgs"]]
    crypto = make_crypto(root, orgs)
    endpoint = str(config["listen"])
    configs = write_sdk_configs(root, str(config["chain_id"]), endpoint, crypto)
    chain = Chain(
        str(config["chain_id"]), crypto, config.get("start_ms"), int(config.get("block_tx_capacity", 100))
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=16),
        options=[("grpc.max_receive_message_length", 100 << 20), ("grpc.max_send_message_length", 100 << 20)],
    )
    rpc_node_pb2_grpc.add_RpcNodeServicer_to_server(RpcNode(chain), server)
    roots = b"".join(_cert_pem(c) for c in crypto.cas.values())
    creds = grpc.ssl_server_credentials(
        [(crypto.node_tls[1], crypto.node_tls[0])], root_certificates=roots, require_client_auth=True
    )
    if server.add_secure_port(endpoint, creds) == 0:
        raise SystemExit(f"cannot listen on {endpoint} (port taken?)")
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    proposer = threading.Thread(
        target=chain.run_proposer, args=(int(config.get("block_interval_ms", 20)) / 1000, stop), daemon=True
    )
    proposer.start()
    ready = {
        "endpoint": endpoint,
        "chain_id": chain.chain_id,
        "orgs": orgs,
        "sdk_configs": {o: configs[o] for o in orgs},
        "admin_sdk_config": configs["admin"],
        "version": VERSION,
    }
    tmp = root / "ready.json.tmp"
    tmp.write_text(json.dumps(ready, indent=2))
    tmp.replace(root / "ready.json")
    print("ready", json.dumps(ready), flush=True)
    while not stop.wait(0.5):
        pass
    server.stop(0)
    with chain.lock:
        chain.wake.notify_all()


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise SystemExit("usage: standin.py CONFIG.json")
    serve(json.loads(Path(argv[1]).read_text()))


if __name__ == "__main__":
    main(sys.argv)
