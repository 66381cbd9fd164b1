"""Byte encoding of secure-aggregation messages, with a strict parser.

Header (32 bytes, little-endian)::

    magic     4  b"CFSA"
    version   1  2
    kind      1  what the message is (``Kind``); each kind belongs to one round and one direction
    round     1  protocol round (0..4), must match the kind
    reserved  1  0
    sender    2  client id (1..65535) or 0 for the server
    receiver  2  client id or 0 for the server
    session  16  session id
    body      4  body length in bytes

Bodies (ids are 2-byte little-endian, lists strictly increasing by id, so a list never repeats an id;
``sig`` is a signature under a client's identity key: length(1) then that many bytes, 0..255 — 64
for Ed25519, at most 72 for SM2's DER; an empty one is parsed and refused by ``secagg`` as missing)::

    ADVERTISE_KEYS       c_pk(32) s_pk(32) sig
    KEY_LIST             count(2) then count x [id c_pk(32) s_pk(32) sig]
    ENCRYPTED_SHARES     count(2) then count x [receiver id, sealed(106)]
    FORWARDED_SHARES     count(2) then count x [sender id, sealed(106)]
    MASKED_INPUT         params x uint64 little-endian
    SURVIVORS            count(2) then count x [survivor id]                (U3, to be signed)
    SURVIVORS_SIGNATURE  sig                                                (over U3)
    UNMASK_REQUEST       count(2) then count x [survivor id]                (U3)
                         then count(2) then count x [signer id, sig]        (t signatures over U3)
    UNMASK_SHARES        count(2) then count x [id, what(1), share(37)]
                         what: 1 = self-mask seed b, 2 = mask key s_sk

``unpack`` refuses anything else with :class:`MalformedMessage` naming the field (oversized,
truncated, trailing bytes, bad magic/version/kind/round, unsorted or repeated ids); it checks no
protocol state and no signature — the session/round/sender and signature checks belong to ``secagg``.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from itertools import pairwise

import numpy as np

from .errors import MalformedMessage
from .fixedpoint import Ring
from .shamir import SHARE_BYTES

MAGIC = b"CFSA"
VERSION = 2  # 2: signed keys and the survivor-set consistency round
SESSION_BYTES = 16
KEY_BYTES = 32
SERVER = 0
MAX_ID = 0xFFFF
NONCE_BYTES = 12
MAX_SIGNATURE_BYTES = 0xFF  # the length is one byte
SHARE_PLAINTEXT_BYTES = 2 + 2 + 2 * SHARE_BYTES  # sender id, receiver id, share of s_sk, share of b
SEALED_BYTES = NONCE_BYTES + SHARE_PLAINTEXT_BYTES + 16  # nonce, ciphertext, GCM tag
_HEADER = struct.Struct("<4sBBBBHH16sI")
HEADER_BYTES = _HEADER.size


class Kind(IntEnum):
    ADVERTISE_KEYS = 1
    KEY_LIST = 2
    ENCRYPTED_SHARES = 3
    FORWARDED_SHARES = 4
    MASKED_INPUT = 5
    SURVIVORS = 6
    SURVIVORS_SIGNATURE = 7
    UNMASK_REQUEST = 8
    UNMASK_SHARES = 9


ROUND_OF = {
    Kind.ADVERTISE_KEYS: 0,
    Kind.KEY_LIST: 1,
    Kind.ENCRYPTED_SHARES: 1,
    Kind.FORWARDED_SHARES: 2,
    Kind.MASKED_INPUT: 2,
    Kind.SURVIVORS: 3,
    Kind.SURVIVORS_SIGNATURE: 3,
    Kind.UNMASK_REQUEST: 4,
    Kind.UNMASK_SHARES: 4,
}
FROM_SERVER = frozenset({Kind.KEY_LIST, Kind.FORWARDED_SHARES, Kind.SURVIVORS, Kind.UNMASK_REQUEST})


class ShareKind(IntEnum):
    SELF_MASK_SEED = 1  # a share of b_u (asked for surviving clients)
    MASK_KEY = 2  # a share of s_u^SK (asked for dropped clients)


@dataclass(frozen=True, slots=True)
class Header:
    kind: Kind
    sender: int
    receiver: int
    session: bytes

    @property
    def round(self) -> int:
        return ROUND_OF[self.kind]


def pack(header: Header, *body: bytes | memoryview) -> bytes:
    if len(header.session) != SESSION_BYTES:
        raise MalformedMessage(f"session id must be {SESSION_BYTES} bytes")
    size = sum(len(b) if isinstance(b, bytes) else b.nbytes for b in body)
    head = _HEADER.pack(
        MAGIC,
        VERSION,
        int(header.kind),
        header.round,
        0,
        header.sender,
        header.receiver,
        header.session,
        size,
    )
    return b"".join((head, *body))


def unpack(data: bytes, max_bytes: int) -> tuple[Header, memoryview]:
    """Parse the header; returns it with the body (a view into ``data``)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedMessage("message is not bytes")
    if len(data) > max_bytes:
        raise MalformedMessage(f"oversized message ({len(data)} bytes > {max_bytes})")
    if len(data) < HEADER_BYTES:
        raise MalformedMessage(f"truncated header ({len(data)} < {HEADER_BYTES} bytes)")
    magic, version, kind, rnd, reserved, sender, receiver, session, size = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise MalformedMessage(f"bad magic {magic!r}")
    if version != VERSION:
        raise MalformedMessage(f"unsupported version {version}")
    if kind not in Kind._value2member_map_:
        raise MalformedMessage(f"unknown message kind {kind}")
    k = Kind(kind)
    if rnd != ROUND_OF[k] or reserved != 0:
        raise MalformedMessage(f"{k.name} carries round {rnd}, belongs to round {ROUND_OF[k]}")
    if len(data) - HEADER_BYTES != size:
        raise MalformedMessage(f"{k.name}: header says {size} body bytes, got {len(data) - HEADER_BYTES}")
    return Header(k, sender, receiver, bytes(session)), memoryview(data)[HEADER_BYTES:]


# --- bodies -------------------------------------------------------------------------------------


def _count(body: memoryview, entry: int, what: str) -> int:
    if len(body) < 2:
        raise MalformedMessage(f"{what}: truncated count")
    count = int.from_bytes(body[:2], "little")
    if len(body) != 2 + count * entry:
        raise MalformedMessage(f"{what}: {count} entries need {2 + count * entry} bytes, got {len(body)}")
    return count


def _ids_increasing(ids: Sequence[int], what: str) -> None:
    if any(not 1 <= i <= MAX_ID for i in ids):
        raise MalformedMessage(f"{what}: client id out of range")
    if any(a >= b for a, b in pairwise(ids)):
        raise MalformedMessage(f"{what}: ids not strictly increasing (repeated or unsorted)")


def _id(i: int) -> bytes:
    return i.to_bytes(2, "little")


class _Reader:
    """Sequential reads over a body with variable-length fields; any overrun is :class:`MalformedMessage`."""

    __slots__ = ("body", "pos", "what")

    def __init__(self, body: memoryview, what: str) -> None:
        self.body, self.pos, self.what = body, 0, what

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.body):
            raise MalformedMessage(f"{self.what}: truncated ({len(self.body)} bytes)")
        out = self.body[self.pos : self.pos + n]
        self.pos += n
        return out

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "little")

    def signature(self) -> bytes:
        return bytes(self.take(self.take(1)[0]))

    def end(self) -> None:
        if self.pos != len(self.body):
            raise MalformedMessage(f"{self.what}: {len(self.body) - self.pos} trailing bytes")


def pack_signature(signature: bytes) -> bytes:
    if len(signature) > MAX_SIGNATURE_BYTES:
        raise MalformedMessage(f"a signature is at most {MAX_SIGNATURE_BYTES} bytes")
    return bytes([len(signature)]) + signature


def unpack_signature(body: memoryview, what: str) -> bytes:
    r = _Reader(body, what)
    sig = r.signature()
    r.end()
    return sig


def pack_keys(c_pk: bytes, s_pk: bytes, signature: bytes) -> bytes:
    return c_pk + s_pk + pack_signature(signature)


def unpack_keys(body: memoryview) -> tuple[bytes, bytes, bytes]:
    r = _Reader(body, "ADVERTISE_KEYS")
    c_pk, s_pk, sig = bytes(r.take(KEY_BYTES)), bytes(r.take(KEY_BYTES)), r.signature()
    r.end()
    return c_pk, s_pk, sig


def pack_key_list(entries: Sequence[tuple[int, bytes, bytes, bytes]]) -> bytes:
    return _id(len(entries)) + b"".join(_id(i) + c + s + pack_signature(sig) for i, c, s, sig in entries)


def unpack_key_list(body: memoryview) -> list[tuple[int, bytes, bytes, bytes]]:
    r = _Reader(body, "KEY_LIST")
    out = []
    for _ in range(r.u16()):
        i = r.u16()
        out.append((i, bytes(r.take(KEY_BYTES)), bytes(r.take(KEY_BYTES)), r.signature()))
    r.end()
    _ids_increasing([e[0] for e in out], "KEY_LIST")
    return out


def pack_sealed(entries: Sequence[tuple[int, bytes]]) -> bytes:
    if any(len(blob) != SEALED_BYTES for _, blob in entries):
        raise MalformedMessage(f"sealed shares are {SEALED_BYTES} bytes")
    return _id(len(entries)) + b"".join(_id(i) + blob for i, blob in entries)


def unpack_sealed(body: memoryview, what: str) -> list[tuple[int, bytes]]:
    step = 2 + SEALED_BYTES
    count = _count(body, step, what)
    out = []
    for k in range(count):
        e = body[2 + k * step : 2 + (k + 1) * step]
        out.append((int.from_bytes(e[:2], "little"), bytes(e[2:])))
    _ids_increasing([i for i, _ in out], what)
    return out


def pack_vector(v: Ring) -> memoryview:
    a = np.ascontiguousarray(v, dtype="<u8")
    return memoryview(a.data).cast("B")


def unpack_vector(body: memoryview, params: int) -> Ring:
    if len(body) != 8 * params:
        raise MalformedMessage(
            f"MASKED_INPUT: vector of {len(body)} bytes, expected {params} words ({8 * params} bytes)"
        )
    return np.frombuffer(body, dtype="<u8").astype(np.uint64, copy=False)


def pack_ids(ids: Sequence[int]) -> bytes:
    return _id(len(ids)) + b"".join(_id(i) for i in ids)


def unpack_ids(body: memoryview, what: str) -> list[int]:
    count = _count(body, 2, what)
    ids = [int.from_bytes(body[2 + 2 * k : 4 + 2 * k], "little") for k in range(count)]
    _ids_increasing(ids, what)
    return ids


def pack_unmask_request(survivors: Sequence[int], signatures: Sequence[tuple[int, bytes]]) -> bytes:
    return (
        pack_ids(survivors)
        + _id(len(signatures))
        + b"".join(_id(i) + pack_signature(s) for i, s in signatures)
    )


def unpack_unmask_request(body: memoryview) -> tuple[list[int], list[tuple[int, bytes]]]:
    """The survivor set ``U3`` and the signatures over it, each list strictly increasing by id."""
    r = _Reader(body, "UNMASK_REQUEST")
    survivors = [r.u16() for _ in range(r.u16())]
    signatures = [(r.u16(), r.signature()) for _ in range(r.u16())]
    r.end()
    _ids_increasing(survivors, "UNMASK_REQUEST survivors")
    _ids_increasing([i for i, _ in signatures], "UNMASK_REQUEST signers")
    return survivors, signatures


def pack_unmask(entries: Sequence[tuple[int, ShareKind, bytes]]) -> bytes:
    return _id(len(entries)) + b"".join(_id(i) + bytes([int(k)]) + share for i, k, share in entries)


def unpack_unmask(body: memoryview) -> list[tuple[int, ShareKind, bytes]]:
    step = 3 + SHARE_BYTES
    count = _count(body, step, "UNMASK_SHARES")
    out = []
    for k in range(count):
        e = body[2 + k * step : 2 + (k + 1) * step]
        what = e[2]
        if what not in ShareKind._value2member_map_:
            raise MalformedMessage(f"UNMASK_SHARES: unknown share kind {what}")
        out.append((int.from_bytes(e[:2], "little"), ShareKind(what), bytes(e[3:])))
    _ids_increasing([i for i, _, _ in out], "UNMASK_SHARES")
    return out
