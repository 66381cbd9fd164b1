"""Trusted channel from a data owner's node into an attested enclave (sharp: protocol internals).

The enclave's fresh X25519 key is bound in its quote's REPORT_DATA; the sender makes an ephemeral
X25519 key per transfer. shared = X25519(sender_eph, enclave_pub); then
``okm = HKDF-SHA256(ikm=shared, salt=quote_digest (32 bytes), info, length=36)``, key = okm[:32]
(AES-256-GCM), nonce_prefix = okm[32:], with info = b"confide/tee-channel/v1\\x00" || RFC 8785 JSON
of {"dataset_id", "direction": "owner-to-enclave", "enclave_pub": hex, "sender_key_id",
"sender_pub": hex, "task_id", "transfer_id": hex, "v": 1}.

Frame = 34-byte header || body (integers big-endian): magic b"CFTC" (4) | version 1 (1) | flags
(1; bit 0 FINAL, the rest 0) | transfer id (16) | seq (8) | body length (4) || [seq 0 only: the
sender's ephemeral public key (32)] || AES-256-GCM ciphertext || tag (16). nonce = nonce_prefix ||
seq; AAD = every frame byte before the ciphertext. Frame 0 carries the canonical JSON manifest,
frames 1..n one Arrow IPC stream each (batches sliced to fit the frame limit), the FINAL frame the
trailer {"data_frames": n, "rows": r}. The receiver accepts exactly seq 0, 1, 2, ... of one
transfer and nothing after FINAL; anything else aborts the transfer with one opaque
:class:`ChannelError` and leaves the receiver unusable.
"""

from __future__ import annotations

import hashlib
import itertools
import mmap
import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from confide.crypto.canonical import canonical_bytes, parse_canonical

__all__ = ["ChannelError", "ChannelReceiver", "ChannelSender", "TransferContext"]

MAGIC, VERSION, FLAG_FINAL = b"CFTC", 1, 0x01
HEADER = struct.Struct(">4sBB16sQI")
PUB_LEN, TAG_LEN, MAX_FRAME, MIN_FRAME = 32, 16, 1 << 20, 4096
INFO_LABEL = b"confide/tee-channel/v1\x00"
OPAQUE = "trusted channel transfer aborted"
SLAB = 16 << 20  # a collecting receiver decrypts payloads into private maps this large


def _slab(size: int) -> memoryview:
    """Private anonymous memory, faulted in by one call where the OS can (Linux ``MAP_POPULATE``)."""
    flags = mmap.MAP_PRIVATE | getattr(mmap, "MAP_ANONYMOUS", 0) | getattr(mmap, "MAP_POPULATE", 0)
    return memoryview(mmap.mmap(-1, size, flags=flags))


class ChannelError(Exception):
    """The transfer was aborted. ``str()`` says nothing specific; ``detail`` is for logs only."""

    def __init__(self, detail: str) -> None:
        super().__init__(OPAQUE)
        self.detail = detail


@dataclass(frozen=True, slots=True)
class TransferContext:
    """What both ends must agree on, or no frame authenticates: the verified quote and the purpose."""

    quote_digest: bytes
    task_id: str
    dataset_id: str
    sender_key_id: str

    def __post_init__(self) -> None:
        if len(self.quote_digest) != 32:
            raise ValueError("quote_digest must be 32 bytes")

    def bound(self, transfer_id: bytes) -> dict[str, Any]:
        """Fields bound into the keys and the manifest."""
        ids = {"dataset_id": self.dataset_id, "sender_key_id": self.sender_key_id, "task_id": self.task_id}
        return ids | {"transfer_id": transfer_id.hex(), "v": VERSION}


def channel_info(ctx: TransferContext, *, sender_pub: bytes, enclave_pub: bytes, transfer_id: bytes) -> bytes:
    """The exact HKDF ``info`` bytes of one transfer."""
    body = ctx.bound(transfer_id) | {"direction": "owner-to-enclave"}
    body |= {"enclave_pub": enclave_pub.hex(), "sender_pub": sender_pub.hex()}
    return INFO_LABEL + canonical_bytes(body)


def derive_keys(shared: bytes, quote_digest: bytes, info: bytes) -> tuple[bytes, bytes]:
    """HKDF-SHA256 salted with the quote digest -> (32-byte AES key, 4-byte nonce prefix)."""
    okm = HKDF(algorithm=hashes.SHA256(), length=36, salt=quote_digest, info=info).derive(shared)
    return okm[:32], okm[32:]


def schema_digest(schema: pa.Schema) -> str:
    """SHA-256 hex of canonical JSON ``[{"name", "nullable", "type": str(arrow type)}, ...]``."""
    fields = [{"name": f.name, "nullable": f.nullable, "type": str(f.type)} for f in schema]
    return hashlib.sha256(canonical_bytes(fields)).hexdigest()


def _ipc(schema: pa.Schema, batch: pa.RecordBatch | None) -> memoryview:
    """One Arrow IPC stream, as a byte view of Arrow's buffer (no copy)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema) as writer:
        if batch is not None:
            writer.write_batch(batch)
    return memoryview(sink.getvalue()).cast("B")


def _chunks(batch: pa.RecordBatch, limit: int) -> Iterator[tuple[memoryview, int]]:
    """Arrow IPC streams of at most ``limit`` bytes covering ``batch``, with their row counts."""
    # Slice to 3/4 of the limit by in-memory size, so halving an oversize piece is the exception.
    step = max(1, batch.num_rows * (limit * 3 // 4) // max(batch.nbytes, 1))
    pending = [batch.slice(start, step) for start in range(0, batch.num_rows, step)][::-1]
    while pending:
        piece = pending.pop()
        data = _ipc(piece.schema, piece)
        if len(data) <= limit:
            yield data, piece.num_rows
        elif piece.num_rows <= 1:
            raise ValueError(f"a single row needs {len(data)} bytes, more than the frame limit allows")
        else:
            pending += [piece.slice(piece.num_rows // 2), piece.slice(0, piece.num_rows // 2)]


class ChannelSender:
    """The owner's end of one transfer; ``ephemeral`` and ``transfer_id`` are for known-answer tests only."""

    def __init__(
        self,
        enclave_public: bytes,
        context: TransferContext,
        *,
        max_frame: int = MAX_FRAME,
        ephemeral: X25519PrivateKey | None = None,
        transfer_id: bytes | None = None,
    ) -> None:
        eph = ephemeral if ephemeral is not None else X25519PrivateKey.generate()
        self.transfer_id = transfer_id if transfer_id is not None else os.urandom(16)
        if len(self.transfer_id) != 16 or not MIN_FRAME <= max_frame <= MAX_FRAME:
            raise ValueError(f"transfer_id must be 16 bytes and max_frame in [{MIN_FRAME}, {MAX_FRAME}]")
        self.context, self.public_key = context, eph.public_key().public_bytes_raw()
        shared = eph.exchange(X25519PublicKey.from_public_bytes(enclave_public))
        info = channel_info(
            context, sender_pub=self.public_key, enclave_pub=enclave_public, transfer_id=self.transfer_id
        )
        key, self._prefix = derive_keys(shared, context.quote_digest, info)
        self._aead, self._limit = AESGCM(key), max_frame - HEADER.size - TAG_LEN
        self._seq, self._used = 0, False

    def send_batches(self, batches: Iterable[Any], schema: pa.Schema | None = None) -> Iterator[bytes]:
        """Lazy frames: manifest, data for ``batches``, FINAL trailer; ``schema`` if batches may be empty."""
        if self._used:
            raise RuntimeError("a ChannelSender carries exactly one transfer")
        self._used, it = True, iter(batches)
        if schema is None:
            first = next(it, None)
            if first is None:
                raise ValueError("no batches and no schema: pass schema= for an empty transfer")
            schema, it = first.schema, itertools.chain([first], it)
        return self._frames(schema, it)

    def _frames(self, schema: pa.Schema, batches: Iterator[pa.RecordBatch]) -> Iterator[bytes]:
        manifest = self.context.bound(self.transfer_id)
        manifest.update(columns=schema.names, schema_digest=schema_digest(schema))
        yield self._frame(canonical_bytes(manifest), lead=self.public_key)
        rows = frames = 0
        for batch in batches:
            if not batch.schema.equals(schema):
                raise ValueError("a batch's schema differs from the transfer's schema")
            for payload, n in _chunks(batch, self._limit) if batch.num_rows else ():
                yield self._frame(payload)
                rows, frames = rows + n, frames + 1
        if frames == 0:  # the receiver learns the schema from the first data frame, so always send one
            yield self._frame(_ipc(schema, None))
            frames = 1
        yield self._frame(canonical_bytes({"data_frames": frames, "rows": rows}), flags=FLAG_FINAL)

    def _frame(self, plaintext: bytes | memoryview, *, lead: bytes = b"", flags: int = 0) -> bytes:
        if len(lead) + len(plaintext) > self._limit:
            raise ValueError("manifest or payload larger than the frame limit")
        body_len = len(lead) + len(plaintext) + TAG_LEN
        aad = HEADER.pack(MAGIC, VERSION, flags, self.transfer_id, self._seq, body_len) + lead
        frame = aad + self._aead.encrypt(self._prefix + self._seq.to_bytes(8, "big"), plaintext, aad)
        self._seq += 1
        return frame


class ChannelReceiver:
    """The enclave's end of one transfer: :meth:`feed` frames in arrival order, then :meth:`finish`.

    Batches from :meth:`feed` are authenticated per frame; only :meth:`finish` says the transfer is
    whole, so nothing may leave the enclave before it. ``collect=False``: finish returns no rows."""

    def __init__(
        self, enclave_key: X25519PrivateKey, context: TransferContext, *, collect: bool = True
    ) -> None:
        self._key, self._context, self._collect = enclave_key, context, collect
        self._aead: AESGCM | None = None
        self._prefix = self._transfer_id = self._aes_key = b""
        self._slab, self._slab_used = memoryview(b""), 0
        self._next = self._rows = self._data_frames = 0
        self._done, self._error = False, ""
        self.manifest: dict[str, Any] = {}
        self._schema: pa.Schema | None = None
        self._batches: list[pa.RecordBatch] = []

    def feed(self, frame: bytes | memoryview) -> list[pa.RecordBatch]:
        """Accept the next frame; return the record batches it carried (none for manifest or trailer)."""
        if self._error:
            raise ChannelError(self._error)
        try:
            return self._accept(memoryview(frame))
        except Exception as exc:  # a trust boundary: whatever broke, the caller sees one error
            detail = exc.detail if isinstance(exc, ChannelError) else f"internal: {type(exc).__name__}"
            self._error, self._aead, self._batches = detail, None, []  # forget keys and every batch
            self._aes_key, self._slab = b"", memoryview(b"")
            raise ChannelError(self._error) from None

    def finish(self) -> pa.Table:
        """The whole verified table; raises :class:`ChannelError` unless the FINAL frame arrived."""
        if not self._error and not self._done:
            self._error, self._aead, self._batches = "truncated: no final frame", None, []
            self._aes_key, self._slab = b"", memoryview(b"")
        if self._error:
            raise ChannelError(self._error)
        return pa.Table.from_batches(self._batches, schema=self._schema)

    def _accept(self, frame: memoryview) -> list[pa.RecordBatch]:
        if self._done:
            raise ChannelError("after-final: frame after the FINAL frame")
        if not HEADER.size + TAG_LEN <= len(frame) <= MAX_FRAME:
            raise ChannelError("malformed: frame size out of bounds")
        magic, version, flags, tid, seq, body_len = HEADER.unpack_from(frame)
        if (magic, version, flags & ~FLAG_FINAL, body_len) != (MAGIC, VERSION, 0, len(frame) - HEADER.size):
            raise ChannelError("malformed: header")
        if self._aead is not None and tid != self._transfer_id:
            raise ChannelError("transfer-id: frame of another transfer")
        if seq != self._next:
            kind = "gap" if seq > self._next else "replay"
            raise ChannelError(f"seq-{kind}: expected {self._next}, got {seq}")
        if seq == 0:
            self._open(tid, frame, flags)
        lead = HEADER.size + (PUB_LEN if seq == 0 else 0)
        assert self._aead is not None
        nonce, body, aad = self._prefix + seq.to_bytes(8, "big"), frame[lead:], frame[:lead]
        kept = self._collect and seq > 0 and not flags & FLAG_FINAL
        try:
            plain = self._decrypt_kept(nonce, body, aad) if kept else self._aead.decrypt(nonce, body, aad)
        except InvalidTag:
            raise ChannelError("auth: frame failed authentication") from None
        self._next += 1
        if seq == 0 or flags & FLAG_FINAL:
            (self._take_manifest if seq == 0 else self._take_trailer)(bytes(plain))  # bytes already: no copy
            return []
        return self._take_data(plain)

    def _open(self, tid: bytes, frame: memoryview, flags: int) -> None:
        if flags or len(frame) < HEADER.size + PUB_LEN + TAG_LEN:
            raise ChannelError("malformed: first frame")
        sender_pub = bytes(frame[HEADER.size : HEADER.size + PUB_LEN])
        try:
            shared = self._key.exchange(X25519PublicKey.from_public_bytes(sender_pub))
        except ValueError:  # low-order point: the shared secret would be all zeros
            raise ChannelError("key: unusable sender public key") from None
        enclave_pub = self._key.public_key().public_bytes_raw()
        info = channel_info(self._context, sender_pub=sender_pub, enclave_pub=enclave_pub, transfer_id=tid)
        key, self._prefix = derive_keys(shared, self._context.quote_digest, info)
        self._aead, self._aes_key, self._transfer_id = AESGCM(key), key, tid

    def _decrypt_kept(self, nonce: bytes, body: memoryview, aad: memoryview) -> memoryview:
        """``AESGCM.decrypt`` into the current slab: no allocation and zero-fill per payload, and pages
        faulted in bulk. The plaintext is written before the tag is checked; nothing reads it unless
        ``finalize`` passes, and a failure ends the transfer."""
        size = len(body) - TAG_LEN
        need = size + 15  # update_into wants a cipher block's slack
        if self._slab_used + need > len(self._slab):
            self._slab, self._slab_used = _slab(max(SLAB, need)), 0
        out = self._slab[self._slab_used : self._slab_used + need]
        self._slab_used += -(-need // 64) * 64  # the next payload starts 64-byte aligned
        decryptor = Cipher(algorithms.AES(self._aes_key), modes.GCM(nonce, bytes(body[size:]))).decryptor()
        decryptor.authenticate_additional_data(aad)
        written = decryptor.update_into(body[:size], out)
        decryptor.finalize()
        return out[:written]

    def _take_manifest(self, plain: bytes) -> None:
        m, bound = _parse(plain, "manifest"), self._context.bound(self._transfer_id)
        ok = isinstance(m, dict) and {k: m.get(k) for k in bound} == bound
        if not (ok and isinstance(m.get("columns"), list) and isinstance(m.get("schema_digest"), str)):
            raise ChannelError("manifest: does not match this transfer")
        self.manifest = m

    def _take_data(self, plain: bytes | memoryview) -> list[pa.RecordBatch]:
        try:
            reader = pa.ipc.open_stream(pa.py_buffer(plain))
            batches = list(reader)
            for batch in batches:  # the sender is not trusted with enclave memory: check every offset
                batch.validate(full=True)
        except (pa.ArrowException, ValueError) as exc:
            raise ChannelError(f"payload: {type(exc).__name__}") from None
        if self._schema is None:
            m = self.manifest
            if schema_digest(reader.schema) != m["schema_digest"] or reader.schema.names != m["columns"]:
                raise ChannelError("payload: schema does not match the manifest")
            self._schema = reader.schema
        elif not reader.schema.equals(self._schema):
            raise ChannelError("payload: schema changed mid-transfer")
        self._data_frames += 1
        self._rows += sum(b.num_rows for b in batches)
        if self._collect:
            self._batches.extend(batches)
        return batches

    def _take_trailer(self, plain: bytes) -> None:
        expected = {"data_frames": self._data_frames, "rows": self._rows}
        if self._schema is None or _parse(plain, "trailer") != expected:
            raise ChannelError("trailer: counts do not match what arrived")
        self._done = True


def _parse(plain: bytes, what: str) -> Any:
    try:
        return parse_canonical(plain)
    except ValueError:
        raise ChannelError(f"{what}: not canonical JSON") from None
