"""Signed HTTP requests: a profile of RFC 9421 (HTTP Message Signatures).

Every API call carries::

    Content-Digest: sha-256=:<base64 of SHA-256(body)>:          (RFC 9530)
    Signature-Input: sig1=("@method" "@path" "@query" "content-digest");created=<unix s>;
                     nonce="<hex>";keyid="<key id>";alg="<alg>"          (one line on the wire)
    Signature: sig1=:<base64 signature>:

The signature base is built as in RFC 9421 §2.5: one line per covered
component (``"@method": POST`` ...) and a last ``"@signature-params"`` line.
``alg`` is ``ed25519`` for the default suite and ``sm2-sm3`` for gm. The server
accepts a request only if ``created`` is within the window, the nonce was not
seen before within that window, the key id is an active member on the server's
own ledger view and the signature verifies. Every failure is one opaque 401.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from .errors import InvalidSignature
from .identity import Identity
from .suite import PublicKey

__all__ = [
    "COVERED",
    "NonceCache",
    "NonceStore",
    "SignatureRejected",
    "SignedRequest",
    "sign_request",
    "verify_request",
]

COVERED = ('"@method"', '"@path"', '"@query"', '"content-digest"')
_ALG = {"default": "ed25519", "gm": "sm2-sm3"}
_PARAMS = re.compile(
    r'^sig1=\("@method" "@path" "@query" "content-digest"\);created=(\d{1,12});'
    r'nonce="([0-9a-f]{32})";keyid="([0-9a-f]{64})";alg="([a-z0-9-]{1,16})"$'
)
_SIG = re.compile(r"^sig1=:([A-Za-z0-9+/=]{1,400}):$")


class SignatureRejected(Exception):
    """The request is not signed by a known key, or is stale, replayed or altered."""

    def __init__(self, detail: str) -> None:
        super().__init__("request signature rejected")
        self.detail = detail  # logged, never returned to the caller


def content_digest(body: bytes) -> str:
    return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":"


def _base(method: str, path: str, query: str, digest: str, params: str) -> bytes:
    lines = [
        f'"@method": {method.upper()}',
        f'"@path": {path}',
        f'"@query": ?{query}',
        f'"content-digest": {digest}',
        f'"@signature-params": {params}',
    ]
    return "\n".join(lines).encode("utf-8")


def sign_request(
    identity: Identity, method: str, path: str, query: str, body: bytes, *, created: int | None = None
) -> dict[str, str]:
    """Headers that sign this request with ``identity``."""
    digest = content_digest(body)
    ts = int(time.time()) if created is None else created
    alg = _ALG.get(identity.suite.name, identity.suite.name)
    params = (
        f'({" ".join(COVERED)});created={ts};nonce="{os.urandom(16).hex()}";'
        f'keyid="{identity.key_id}";alg="{alg}"'
    )
    sig = identity.sign(_base(method, path, query, digest, params))
    return {
        "Content-Digest": digest,
        "Signature-Input": f"sig1={params}",
        "Signature": f"sig1=:{base64.b64encode(sig).decode()}:",
    }


class NonceStore(Protocol):
    """Where seen nonces live. ``check_and_add`` is False for a nonce seen within the window."""

    def check_and_add(self, nonce: str, now: int) -> bool: ...


class NonceCache:
    """Nonces seen within the window, in memory (bounded, thread-safe). A replay inside it is refused.

    Lost on restart: long-running services use a persistent store (the node's ``LocalDB``).
    """

    def __init__(self, window_s: int, max_entries: int = 200_000) -> None:
        self.window_s = window_s
        self.max_entries = max_entries
        self._seen: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()

    def check_and_add(self, nonce: str, now: int) -> bool:
        with self._lock:
            while self._seen and next(iter(self._seen.values())) < now - 2 * self.window_s:
                self._seen.popitem(last=False)
            if nonce in self._seen:
                return False
            if len(self._seen) >= self.max_entries:
                self._seen.popitem(last=False)
            self._seen[nonce] = now
            return True


@dataclass(frozen=True, slots=True)
class SignedRequest:
    key_id: str
    created: int
    nonce: str


def verify_request(
    headers: Mapping[str, str],
    method: str,
    path: str,
    query: str,
    body: bytes,
    *,
    lookup_key: object,
    nonces: NonceStore,
    window_s: int = 300,
    now: int | None = None,
) -> SignedRequest:
    """Verify; ``lookup_key(key_id) -> PublicKey | None``. Raises :class:`SignatureRejected`."""
    t = int(time.time()) if now is None else now
    m = _PARAMS.match(headers.get("signature-input", ""))
    s = _SIG.match(headers.get("signature", ""))
    if m is None or s is None:
        raise SignatureRejected("missing or malformed Signature/Signature-Input")
    created, nonce, key_id, _alg = int(m[1]), m[2], m[3], m[4]
    digest = headers.get("content-digest", "")
    if digest != content_digest(body):
        raise SignatureRejected("content digest does not match the body")
    if abs(t - created) > window_s:
        raise SignatureRejected("created outside the accepted window")
    key = lookup_key(key_id)  # type: ignore[operator]
    if not isinstance(key, PublicKey):
        raise SignatureRejected("unknown or inactive key")
    params = headers["signature-input"][len("sig1=") :]
    try:
        key.verify(base64.b64decode(s[1]), _base(method, path, query, digest, params))
    except (InvalidSignature, ValueError):
        raise SignatureRejected("signature does not verify") from None
    if not nonces.check_and_add(nonce, t):
        raise SignatureRejected("nonce replayed")
    return SignedRequest(key_id, created, nonce)
