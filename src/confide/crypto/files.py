"""Writing secrets and records to disk so that a crash never leaves half a file or a readable key.

:func:`atomic_write` writes a fresh temp file in the target's folder (mode 0600 by default, set
before any byte is written), fsyncs it and renames it over the target: readers see the old file or
the new one, never a mix, and a key is never readable by others, not even for a moment.
:func:`read_private` refuses a secret file that group or others may read.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write", "read_private"]


def atomic_write(path: str | Path, data: bytes, *, mode: int = 0o600) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p


def read_private(path: str | Path, what: str = "secret file") -> bytes:
    p = Path(path)
    mode = p.stat().st_mode & 0o777
    if mode & 0o077:
        raise PermissionError(f"{what} {p} has permissions {mode:o}; run: chmod 600 {p}")
    return p.read_bytes()
