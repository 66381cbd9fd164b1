"""ECDH-PSI wire messages (sharp: protocol internals).

Message = 14-byte header || payload, integers big-endian: magic b"CPSI" (4) | version 1 (1) |
type (1) | seq (4) | count (4). Types:

- HELLO (1), seq 0, count 0, payload 46 bytes: role (1: 0 receiver, 1 sender) | output (1: 0
  receiver, 1 both) | set size n (8) | batch bound (4) | context digest (32) = SHA-256 of
  b"confide/psi-ecdh/v1\\x00" || the hash-to-curve DST (binds the session).
- MASKED (2): the sender's own points u(clamp(k)·H(id)), ``count`` × 32 bytes, in shuffled order.
- DOUBLE (3): the peer's MASKED points of batch ``seq`` with our key applied, ``count`` × 16 bytes
  (the low 16 bytes of the 32-byte u-coordinate), in the order received.
- ABORT (4): UTF-8 reason, count 0. The peer stopped; the receiver of it stops too.

MASKED and DOUBLE batches are numbered 0, 1, 2, ... per stream; every count is 1..batch bound.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .interface import MAX_BATCH, Output, PsiProtocolError, Role

__all__ = ["Hello", "Message", "decode", "encode", "encode_hello", "parse_hello"]

MAGIC, VERSION = b"CPSI", 1
HEADER = struct.Struct(">4sBBII")
HELLO, MASKED, DOUBLE, ABORT = 1, 2, 3, 4
POINT, TRUNC = 32, 16
_HELLO = struct.Struct(">BBQI32s")
_ROLES: tuple[Role, Role] = ("receiver", "sender")
_OUTPUTS: tuple[Output, Output] = ("receiver", "both")
MAX_ITEMS = 1 << 40


@dataclass(frozen=True, slots=True)
class Message:
    kind: int
    seq: int
    count: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Hello:
    role: Role
    output: Output
    n: int
    batch: int
    context: bytes


def encode(kind: int, seq: int, count: int, payload: bytes) -> bytes:
    return HEADER.pack(MAGIC, VERSION, kind, seq, count) + payload


def encode_hello(h: Hello) -> bytes:
    body = _HELLO.pack(_ROLES.index(h.role), _OUTPUTS.index(h.output), h.n, h.batch, h.context)
    return encode(HELLO, 0, 0, body)


def decode(data: bytes, batch: int) -> Message:
    """Parse and check one message's framing; ``batch`` is the largest count accepted."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise PsiProtocolError(f"peer message is {type(data).__name__}, not bytes")
    data = bytes(data)
    if len(data) < HEADER.size:
        raise PsiProtocolError(f"truncated message: {len(data)} bytes, header is {HEADER.size}")
    magic, version, kind, seq, count = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise PsiProtocolError("not a PSI message (bad magic)")
    if version != VERSION:
        raise PsiProtocolError(f"unsupported PSI message version {version}")
    payload = data[HEADER.size :]
    if kind == HELLO:
        if len(payload) != _HELLO.size or seq or count:
            raise PsiProtocolError(f"malformed hello ({len(payload)} payload bytes)")
    elif kind in (MASKED, DOUBLE):
        width = POINT if kind == MASKED else TRUNC
        if not 1 <= count <= batch:
            raise PsiProtocolError(f"batch of {count} items outside 1..{batch}")
        if len(payload) != count * width:
            raise PsiProtocolError(
                f"truncated or padded batch: {len(payload)} bytes for {count} items of {width}"
            )
    elif kind == ABORT:
        if count or len(payload) > 4096:
            raise PsiProtocolError("malformed abort message")
    else:
        raise PsiProtocolError(f"unknown PSI message type {kind}")
    return Message(kind, seq, count, payload)


def parse_hello(msg: Message) -> Hello:
    role, output, n, batch, context = _HELLO.unpack(msg.payload)
    if role > 1 or output > 1:
        raise PsiProtocolError("malformed hello (role/output)")
    if n > MAX_ITEMS or not 1 <= batch <= MAX_BATCH:
        raise PsiProtocolError(f"hello announces out-of-range sizes (n={n}, batch={batch})")
    return Hello(_ROLES[role], _OUTPUTS[output], n, batch, context)
