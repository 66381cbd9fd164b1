"""Contract state: a byte-valued key/value view with copy-on-write overlays.

Values are stored as canonical JSON bytes and decoded on every read, so a
handler can never mutate committed state through an alias. Handlers work on an
:class:`Overlay`; a rejected tx simply drops its overlay (nothing changes), an
accepted one is merged into the block overlay, and the block overlay is written
to the store in one database transaction at commit.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any

from ...crypto import Suite, canonical_bytes, leaf_hash, merkle_root

__all__ = ["MemoryState", "Overlay", "ReadCache", "StateView", "state_leaf", "state_root"]

_TOMBSTONE = b""


class StateView(ABC):
    """Read side of contract state."""

    @abstractmethod
    def get_raw(self, key: str) -> bytes | None: ...

    @abstractmethod
    def keys_with_prefix(self, prefix: str) -> Iterator[str]: ...

    def get(self, key: str) -> dict[str, Any] | None:
        raw = self.get_raw(key)
        return None if raw is None else json.loads(raw)

    def scan(self, prefix: str) -> Iterator[tuple[str, dict[str, Any]]]:
        for k in self.keys_with_prefix(prefix):
            v = self.get(k)
            if v is not None:
                yield k, v


class Overlay(StateView):
    """Staged writes over a parent view."""

    def __init__(self, parent: StateView) -> None:
        self.parent = parent
        self.writes: dict[str, bytes] = {}

    def get_raw(self, key: str) -> bytes | None:
        raw = self.writes.get(key)
        if raw is None:
            return self.parent.get_raw(key)
        return None if raw == _TOMBSTONE else raw

    def put(self, key: str, value: dict[str, Any]) -> None:
        if "\x00" in key:
            raise ValueError("state keys may not contain NUL")
        self.writes[key] = canonical_bytes(value)

    def keys_with_prefix(self, prefix: str) -> Iterator[str]:
        seen = {k for k in self.writes if k.startswith(prefix)}
        merged = seen | set(self.parent.keys_with_prefix(prefix))
        for k in sorted(merged):
            if self.writes.get(k) != _TOMBSTONE:
                yield k

    def merge_into(self, other: Overlay) -> None:
        other.writes.update(self.writes)


class ReadCache(StateView):
    """Memoizes reads of a view that cannot change while the cache lives (one block or batch)."""

    def __init__(self, parent: StateView) -> None:
        self.parent = parent
        self._cache: dict[str, bytes | None] = {}

    def get_raw(self, key: str) -> bytes | None:
        try:
            return self._cache[key]
        except KeyError:
            raw = self._cache[key] = self.parent.get_raw(key)
            return raw

    def keys_with_prefix(self, prefix: str) -> Iterator[str]:
        return self.parent.keys_with_prefix(prefix)


class MemoryState(StateView):
    """A committed state held in a dict (tests, verification replays)."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def get_raw(self, key: str) -> bytes | None:
        return self.data.get(key)

    def keys_with_prefix(self, prefix: str) -> Iterator[str]:
        return iter(sorted(k for k in self.data if k.startswith(prefix)))

    def commit(self, overlay: Overlay) -> None:
        for k, v in overlay.writes.items():
            if v == _TOMBSTONE:
                self.data.pop(k, None)
            else:
                self.data[k] = v

    def items(self) -> Iterator[tuple[str, bytes]]:
        return iter(sorted(self.data.items()))


def state_leaf(suite: Suite, key: str, value: bytes) -> bytes:
    return leaf_hash(suite.hash, key.encode("utf-8") + b"\x00" + value)


def state_root(suite: Suite, leaves_in_key_order: list[bytes]) -> str:
    """RFC 6962 Merkle root over ``key \\0 value`` leaves in key order."""
    return merkle_root(suite.hash, leaves_in_key_order).hex()
