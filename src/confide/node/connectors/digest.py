"""Content digests: RFC 6962 Merkle roots (SHA-256) over 1 MiB chunks, computed while streaming.

One construction for every source, so an auditor needs one recipe:

* a byte stream is cut into fixed chunks of ``CHUNK_SIZE`` = 1 MiB (the last one
  shorter); leaf ``i`` is ``SHA-256(0x00 || chunk_i)`` and the digest is the
  RFC 6962 tree root over the leaves (:mod:`confide.crypto.merkle`); an empty
  stream has no leaves and the root is ``SHA-256("")``;
* **files** (CSV, Parquet, JSON, JSONL, each file of a folder): the stream is the
  raw file bytes;
* **rows** (SQL tables and queries, API samples): leaf 0 is the schema line and
  the following leaves are the 1 MiB chunks of the canonical row stream (see
  :class:`RowStreamDigest`);
* **folders**: the root over one leaf per file, ``relpath-utf8 || 0x00 ||
  file-root(32 bytes)``, files sorted by the UTF-8 bytes of their POSIX path.

Only leaf hashes are kept (32 bytes per MiB), so memory stays flat for any size.
The hash is fixed to SHA-256 because the ledger's ``content_digest`` is 64 hex.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import math
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from ...crypto.merkle import leaf_hash, merkle_root

__all__ = [
    "CHUNK_SIZE",
    "ROWS_FORMAT",
    "BackgroundDigest",
    "FileDigest",
    "MerkleChunker",
    "RowStreamDigest",
    "canonical_row",
    "file_digest",
    "folder_root",
    "json_text",
]

CHUNK_SIZE = 1 << 20
ROWS_FORMAT = "confide-rows/1"


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


@dataclass(frozen=True)
class FileDigest:
    digest: str  # hex Merkle root
    size: int
    chunks: int


class MerkleChunker:
    """Feed bytes in any pieces; leaves are cut at fixed 1 MiB boundaries."""

    def __init__(self) -> None:
        self.leaves: list[bytes] = []
        self.size = 0
        self._h = hashlib.sha256(b"\x00")
        self._fill = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        self.size += len(view)
        while view:
            take = min(CHUNK_SIZE - self._fill, len(view))
            self._h.update(view[:take])  # hashlib drops the GIL for large updates
            self._fill += take
            view = view[take:]
            if self._fill == CHUNK_SIZE:
                self._cut()

    def _cut(self) -> None:
        self.leaves.append(self._h.digest())
        self._h = hashlib.sha256(b"\x00")
        self._fill = 0

    def finish(self) -> list[bytes]:
        """Close the last partial chunk and return all leaf hashes (idempotent)."""
        if self._fill:
            self._cut()
        return self.leaves


def file_digest(path: Path, stop: threading.Event | None = None) -> FileDigest:
    """Merkle root of a file's raw bytes, read once in 1 MiB pieces (``stop`` aborts early)."""
    chunker = MerkleChunker()
    buf = bytearray(CHUNK_SIZE)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            if stop is not None and stop.is_set():
                raise InterruptedError("digest cancelled")
            chunker.update(view[:n])
    leaves = chunker.finish()
    return FileDigest(merkle_root(_sha256, leaves).hex(), chunker.size, len(leaves))


class BackgroundDigest:
    """:func:`file_digest` on a thread while the caller parses the same file (a second reader of
    the page cache costs far less than hashing inline: SHA-256 and Arrow's parser then run on
    different cores). Use as a context manager; leaving it on an error cancels the hashing."""

    def __init__(self, path: Path) -> None:
        self._stop = threading.Event()
        self._result: FileDigest | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(path,), name="confide-digest", daemon=True)

    def _run(self, path: Path) -> None:
        try:
            self._result = file_digest(path, self._stop)
        except BaseException as exc:  # handed to the caller in result()
            self._error = exc

    def __enter__(self) -> BackgroundDigest:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def result(self) -> FileDigest:
        self._thread.join()
        if self._result is None:
            raise self._error or RuntimeError("digest thread did not finish")
        return self._result


def folder_root(entries: Sequence[tuple[str, str]]) -> str:
    """Root over ``(relpath, hex file digest)`` pairs, sorted here by UTF-8 path bytes."""
    ordered = sorted(entries, key=lambda e: e[0].encode())
    leaves = [leaf_hash(_sha256, p.encode() + b"\x00" + bytes.fromhex(d)) for p, d in ordered]
    return merkle_root(_sha256, leaves).hex()


def _canon(v: Any) -> Any:
    if v is None or isinstance(v, bool | int | str):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else {"float": repr(v)}
    if isinstance(v, dt.datetime):
        return {"timestamp": v.isoformat()}
    if isinstance(v, dt.date):
        return {"date": v.isoformat()}
    if isinstance(v, dt.time):
        return {"time": v.isoformat()}
    if isinstance(v, dt.timedelta):
        return {"duration_us": (v.days * 86_400 + v.seconds) * 1_000_000 + v.microseconds}
    if isinstance(v, Decimal):
        return {"decimal": str(v)}
    if isinstance(v, bytes | bytearray | memoryview):
        return {"base64": base64.b64encode(bytes(v)).decode()}
    if isinstance(v, list | tuple | dict):
        return {"json": json_text(v)}
    return {"text": str(v)}


def json_text(v: Any) -> str:
    """Canonical JSON text of a nested value (sorted keys, no spaces, UTF-8)."""
    return json.dumps(v, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


_ENCODE = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False).encode
_PLAIN = frozenset({int, str, bool, type(None)})


def canonical_row(values: Iterable[Any]) -> bytes:
    """One row as a JSON array line; non-JSON values become one-key tagged objects."""
    return _ENCODE([v if type(v) in _PLAIN else _canon(v) for v in values]).encode() + b"\n"


class RowStreamDigest:
    """Digest of rows in a fixed column order, fed in batches; types may be settled at the end.

    Stream: each row is :func:`canonical_row` of its values (ints and floats stay
    distinct: a float always prints with ``.`` or ``e``). The schema line
    ``["confide-rows/1", [[name, type], ...]]`` + newline is leaf 0, prepended at
    :meth:`finish`, so types inferred during the same pass still bind the digest.
    """

    def __init__(self) -> None:
        self._chunker = MerkleChunker()

    def add_rows(self, rows: Iterable[Iterable[Any]]) -> None:
        self._chunker.update(b"".join(canonical_row(r) for r in rows))

    def finish(self, columns: Sequence[tuple[str, str]]) -> str:
        header = json.dumps(
            [ROWS_FORMAT, [list(c) for c in columns]], ensure_ascii=False, separators=(",", ":")
        )
        leaves = [leaf_hash(_sha256, header.encode() + b"\n"), *self._chunker.finish()]
        return merkle_root(_sha256, leaves).hex()
