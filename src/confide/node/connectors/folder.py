"""Folder connector: unstructured files (documents, images, anything), one catalog row per file.

Spec: ``{"type": "files", "path": "folder/"}``.

Every regular file under the folder counts, hidden ones included; symbolic
links are skipped (and counted in ``details``) so a link cannot pull in data
from outside the folder. Each file gets the chunked Merkle digest of its bytes
(:func:`.digest.file_digest`, hashed on a few threads); the dataset digest is
the root over ``(relative path, file digest)`` leaves in path order
(:func:`.digest.folder_root`), so renaming, adding, removing or changing any
file changes it. ``details["files"]`` lists path, size, media type and digest.

Kind is ``document`` when every file is office, PDF or text, else ``files``.
The catalog schema describes a file row — ``path``, ``media_type``,
``size_bytes``, ``content`` — so applications can name what they ask for;
engines read the bytes through :meth:`FolderConnector.files`.
"""

from __future__ import annotations

import mimetypes
import os
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .base import Connector, DatasetProfile, FileEntry
from .digest import CHUNK_SIZE, file_digest, folder_root
from .errors import SchemaError
from .schema import column

__all__ = ["DOCUMENT_SUFFIXES", "FolderConnector"]

DOCUMENT_SUFFIXES = frozenset(
    [
        ".pdf",
        ".doc",
        ".docx",
        ".xls",
        ".xlsx",
        ".ppt",
        ".pptx",
        ".odt",
        ".ods",
        ".odp",
        ".rtf",
        ".txt",
        ".md",
        ".csv",
        ".html",
        ".htm",
        ".xml",
        ".epub",
    ]
)
SCHEMA = [
    column("path", "string", False, "path relative to the folder, '/'-separated"),
    column("media_type", "string", False, "guessed from the file name"),
    column("size_bytes", "int64", False),
    column("content", "binary", False, "the file's bytes"),
]


def _media_type(path: Path) -> str:
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


class FolderConnector(Connector):
    """A folder of files (kind ``files`` or ``document``)."""

    type_name = "files"
    kind = "files"

    def __init__(self, spec: Mapping[str, Any]) -> None:
        super().__init__(spec)
        self.path = self._existing_path(want_dir=True)
        self._entries: list[FileEntry] | None = None
        self.skipped_links = 0

    def _walk(self) -> list[tuple[str, Path]]:
        found, self.skipped_links = [], 0
        for dirpath, dirnames, filenames in os.walk(self.path, followlinks=False):
            self.skipped_links += sum(1 for d in dirnames if Path(dirpath, d).is_symlink())
            for name in filenames:
                full = Path(dirpath, name)
                if full.is_symlink() or not full.is_file():
                    self.skipped_links += full.is_symlink()
                    continue
                found.append((full.relative_to(self.path).as_posix(), full))
        found.sort(key=lambda e: e[0].encode())
        return found

    def _scan(self) -> list[FileEntry]:
        found = self._walk()
        if not found:
            raise SchemaError(
                f"folder {self.path.name!r} holds no files", "put the files in it, or pick another"
            )
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
            digests = list(pool.map(file_digest, [p for _, p in found]))
        self._entries = [
            FileEntry(rel, p, d.size, _media_type(p), d.digest)
            for (rel, p), d in zip(found, digests, strict=True)
        ]
        return self._entries

    def describe(self) -> DatasetProfile:
        entries = self._scan()
        root = folder_root([(e.relpath, e.digest) for e in entries])
        is_doc = all(e.path.suffix.lower() in DOCUMENT_SUFFIXES for e in entries)
        details = {
            "folder": self.path.name,
            "bytes": sum(e.size for e in entries),
            "chunk_size": CHUNK_SIZE,
            "digest_of": "Merkle root over (relpath, file digest) leaves in path order",
            "skipped_symlinks": self.skipped_links,
            "files": [
                {"path": e.relpath, "size": e.size, "media_type": e.media_type, "digest": e.digest}
                for e in entries
            ],
        }
        return DatasetProfile(
            "document" if is_doc else "files", [dict(c) for c in SCHEMA], len(entries), root, details
        )

    def files(self) -> Iterator[FileEntry]:
        """File entries in digest order (digests from :meth:`describe`, or computed now)."""
        yield from self._entries if self._entries is not None else self._scan()
