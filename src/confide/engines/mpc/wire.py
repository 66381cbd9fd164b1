"""Byte encoding of MPC messages (a list of ``uint64`` arrays) with a strict parser.

Layout (little-endian), version 1::

    magic      4  b"CMPC"
    version    1  1
    dtype      1  1 = uint64 little-endian (the only one)
    sender     1  party id
    receiver   1  party id
    session   16  session id
    step       4  per-link sequence number (0, 1, 2, ... for messages from sender to receiver)
    tag        2  what the message is (``Tag``)
    n_arrays   2  number of arrays (<= 64)
    payload    8  payload length in bytes
    then per array: ndim (1 byte, 0..2) and ndim dims (4 bytes each)
    then the payload: the arrays' words, in order

Anything else — wrong magic/version/dtype, a field that does not match what the receiver expects,
shapes that do not add up to the payload length, missing or trailing bytes — raises
``MpcProtocolError`` naming the field; nothing is half-read.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from .errors import MpcProtocolError
from .fixedpoint import Ring

MAGIC = b"CMPC"
VERSION = 1
DTYPE_U64 = 1
SESSION_BYTES = 16
MAX_ARRAYS = 64
MAX_PAYLOAD = 1 << 36
_HEADER = struct.Struct("<4sBBBB16sIHHQ")


class Tag(IntEnum):
    INPUT = 1  # seeds of input shares
    OPEN = 2  # shares opened to everyone (Beaver e/f, truncation c)
    PRIVATE_PRODUCT = 3  # masked private matrix (dealer-assisted product)
    DEALER_REQUEST = 4
    DEALER_MATERIAL = 5
    REVEAL = 6  # an output share sent to the requester
    DONE = 7
    OPEN_BITS = 8  # XOR shares of bits opened to everyone (secure comparison)


@dataclass(frozen=True)
class Header:
    sender: int
    receiver: int
    session: bytes
    step: int
    tag: int


def encode_message(header: Header, arrays: Sequence[Ring]) -> bytes:
    if len(header.session) != SESSION_BYTES:
        raise MpcProtocolError(f"session id must be {SESSION_BYTES} bytes")
    if len(arrays) > MAX_ARRAYS:
        raise MpcProtocolError(f"too many arrays in one message ({len(arrays)} > {MAX_ARRAYS})")
    shapes = bytearray()
    payload = 0
    for a in arrays:
        if a.ndim > 2:
            raise MpcProtocolError("arrays in messages have at most 2 dimensions")
        shapes += struct.pack("<B", a.ndim) + b"".join(struct.pack("<I", d) for d in a.shape)
        payload += 8 * a.size
    head = _HEADER.pack(
        MAGIC,
        VERSION,
        DTYPE_U64,
        header.sender,
        header.receiver,
        header.session,
        header.step,
        int(header.tag),
        len(arrays),
        payload,
    )
    parts = [head, bytes(shapes)]
    parts += [np.ascontiguousarray(a, dtype="<u8").tobytes() for a in arrays]
    return b"".join(parts)


def decode_message(data: bytes, expect: Header, n_arrays: int | None = None) -> list[Ring]:
    """Parse ``data`` and check every header field against ``expect``; returns the arrays."""
    where = f"message from party {expect.sender} (step {expect.step}, {Tag(expect.tag).name})"
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MpcProtocolError(f"{where}: not bytes")
    data = bytes(data)
    if len(data) < _HEADER.size:
        raise MpcProtocolError(f"{where}: truncated header ({len(data)} < {_HEADER.size} bytes)")
    magic, version, dtype, sender, receiver, session, step, tag, count, payload = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise MpcProtocolError(f"{where}: bad magic {magic!r}")
    if version != VERSION:
        raise MpcProtocolError(f"{where}: unsupported version {version}")
    if dtype != DTYPE_U64:
        raise MpcProtocolError(f"{where}: unsupported dtype {dtype}")
    if session != expect.session:
        raise MpcProtocolError(f"{where}: wrong session id")
    if sender != expect.sender or receiver != expect.receiver:
        raise MpcProtocolError(
            f"{where}: addressed {sender}->{receiver}, expected {expect.sender}->{expect.receiver}"
        )
    if step != expect.step:
        raise MpcProtocolError(f"{where}: step {step} out of order (replayed, reordered or dropped)")
    if tag != expect.tag:
        raise MpcProtocolError(f"{where}: unexpected tag {tag}")
    if count > MAX_ARRAYS or (n_arrays is not None and count != n_arrays):
        raise MpcProtocolError(f"{where}: {count} arrays, expected {n_arrays}")
    if payload > MAX_PAYLOAD:
        raise MpcProtocolError(f"{where}: payload length {payload} too large")
    pos = _HEADER.size
    shapes: list[tuple[int, ...]] = []
    total = 0
    for _ in range(count):
        if pos + 1 > len(data):
            raise MpcProtocolError(f"{where}: truncated shape table")
        ndim = data[pos]
        pos += 1
        if ndim > 2:
            raise MpcProtocolError(f"{where}: array with {ndim} dimensions")
        if pos + 4 * ndim > len(data):
            raise MpcProtocolError(f"{where}: truncated shape table")
        dims = struct.unpack_from(f"<{ndim}I", data, pos)
        pos += 4 * ndim
        shapes.append(tuple(dims))
        total += 8 * int(np.prod(dims, dtype=np.int64))
    if total != payload:
        raise MpcProtocolError(f"{where}: shapes need {total} payload bytes, header says {payload}")
    if len(data) - pos < payload:
        raise MpcProtocolError(f"{where}: truncated payload ({len(data) - pos} of {payload} bytes)")
    if len(data) - pos > payload:
        raise MpcProtocolError(f"{where}: {len(data) - pos - payload} trailing bytes")
    out: list[Ring] = []
    for dims in shapes:
        n = int(np.prod(dims, dtype=np.int64))
        arr = np.frombuffer(data, dtype="<u8", count=n, offset=pos).astype(np.uint64, copy=False)
        out.append(arr.reshape(dims))
        pos += 8 * n
    return out
