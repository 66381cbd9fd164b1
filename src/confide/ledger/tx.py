"""Transactions: canonical body, signature, id.

Body (RFC 8785 canonical JSON)::

    {"chain": <consortium chain id>, "type": "dataset.register", "payload": {...},
     "signer": <key id>, "nonce": <32 hex chars>, "created_at": <ms since epoch, UTC>}

``chain`` is an addition to DESIGN §3's field list: it binds the signature to
one consortium, so a tx cannot be replayed on another chain.
The tx id is the suite hash of the body bytes. The signature covers
``b"confide-tx-v1\\x00" + body`` (domain separation from block signatures).
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from typing import Any

from ..crypto import CanonicalEncodingError, Identity, Suite, canonical_bytes, parse_canonical

__all__ = ["TX_DOMAIN", "SignedTx", "Tx", "build_tx", "decode_tx"]

TX_DOMAIN = b"confide-tx-v1\x00"
_FIELDS = frozenset({"chain", "type", "payload", "signer", "nonce", "created_at"})
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_KEYID = re.compile(r"^[0-9a-f]{64}$")
_TYPE = re.compile(r"^[a-z][a-z_]*\.[a-z][a-z_]*$")
MAX_TX_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Tx:
    """A parsed, shape-checked transaction body (signature not yet verified)."""

    chain: str
    type: str
    payload: dict[str, Any]
    signer: str
    nonce: str
    created_at: int
    tx_id: str


@dataclass(frozen=True, slots=True)
class SignedTx:
    """Body bytes as signed, plus the signature. What blocks carry."""

    body: bytes
    signature: bytes

    def tx_id(self, suite: Suite) -> str:
        return suite.hash(self.body).hex()

    def to_json(self) -> dict[str, Any]:
        return {"body": self.body.decode("utf-8"), "sig": self.signature.hex()}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> SignedTx:
        return cls(obj["body"].encode("utf-8"), bytes.fromhex(obj["sig"]))


def build_tx(
    identity: Identity,
    chain: str,
    tx_type: str,
    payload: dict[str, Any],
    *,
    nonce: str | None = None,
    created_at: int | None = None,
) -> SignedTx:
    """Create and sign a transaction. ``created_at`` defaults to now (ms, UTC)."""
    body = {
        "chain": chain,
        "type": tx_type,
        "payload": payload,
        "signer": identity.key_id,
        "nonce": nonce if nonce is not None else os.urandom(16).hex(),
        "created_at": created_at if created_at is not None else int(time.time() * 1000),
    }
    raw = canonical_bytes(body)
    return SignedTx(raw, identity.sign(TX_DOMAIN + raw))


def decode_tx(stx: SignedTx, suite: Suite) -> Tx:
    """Parse and shape-check a body. Raises ``ValueError`` with a readable reason."""
    if len(stx.body) > MAX_TX_BYTES:
        raise ValueError(f"tx body is {len(stx.body)} bytes; the limit is {MAX_TX_BYTES}")
    try:
        obj = parse_canonical(stx.body)
    except CanonicalEncodingError as exc:
        raise ValueError(f"tx body is not canonical JSON: {exc}") from None
    if not isinstance(obj, dict) or set(obj) != _FIELDS:
        raise ValueError(f"tx body must have exactly the fields {sorted(_FIELDS)}")
    chain, tx_type, payload = obj["chain"], obj["type"], obj["payload"]
    signer, nonce, created_at = obj["signer"], obj["nonce"], obj["created_at"]
    if not isinstance(chain, str) or not isinstance(tx_type, str) or not _TYPE.match(tx_type):
        raise ValueError("tx 'chain' and 'type' must be strings; type like 'dataset.register'")
    if not isinstance(payload, dict):
        raise ValueError("tx 'payload' must be an object")
    if not isinstance(signer, str) or not _KEYID.match(signer):
        raise ValueError("tx 'signer' must be a 64-hex-char key id")
    if not isinstance(nonce, str) or not _HEX32.match(nonce):
        raise ValueError("tx 'nonce' must be 32 lower-case hex chars")
    if type(created_at) is not int or created_at < 0:
        raise ValueError("tx 'created_at' must be a non-negative integer (ms since epoch)")
    return Tx(chain, tx_type, payload, signer, nonce, created_at, suite.hash(stx.body).hex())
