"""An ordered log of signed Confide transactions kept by an etcd cluster (Raft), one member per org.

etcd replicates every write through Raft to a majority of its members before it answers, so the
log survives the loss of any minority of members and every member serves the same sequence. The
log is a run of keys ``confide/<chain>/b/<n>`` (n = 0, 1, 2, ... zero-padded, so key order is log
order); each holds one batch: ``{"t": time in ms, "e": [base64 entries]}``. A batch is appended
with a transaction that creates key ``n`` only if it does not exist yet (``create_revision == 0``);
when another appender took ``n`` first it tries ``n + 1``. Nothing is ever overwritten or deleted,
so there are no reorganizations; a batch's ``mod_revision`` is its anchor.

Talks to etcd's v3 JSON gateway over HTTP (``/v3/kv/range``, ``/v3/kv/txn``) with ``httpx``; a
list of endpoints is tried in turn, so a node keeps going while its own member is down.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Sequence
from typing import Any

import httpx

from ..errors import LedgerError
from ..ordered_log import Cursor, LogEntry

__all__ = ["EtcdError", "EtcdLog", "EtcdReader"]

MAX_BATCH_BYTES = 1 << 20  # etcd's default request limit is 1.5 MiB; base64 grows entries by 4/3
MAX_TRIES = 1000


class EtcdError(LedgerError):
    """No etcd member answered, or the cluster refused (the message says which)."""


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _prefix_end(prefix: bytes) -> bytes:
    return prefix[:-1] + bytes([prefix[-1] + 1])


class EtcdLog:
    def __init__(
        self, endpoints: Sequence[str], namespace: str, *, timeout_s: float = 2.0, retry_s: float = 20.0
    ) -> None:
        """``namespace``: the consortium's (chain id and genesis digest), so one cluster may keep
        several consortia's logs and a node never reads another's. ``timeout_s`` bounds one request
        and is well under ``retry_s``, the window for retries: a request caught by a leader's loss
        can hang until etcd gives up on it (seconds), and must not use up the whole window."""
        if not endpoints:
            raise EtcdError("no etcd endpoint configured")
        self.endpoints = [e.rstrip("/") for e in endpoints]
        self.prefix = f"confide/{namespace}/b/".encode()
        self._http = httpx.Client(timeout=timeout_s)
        self.retry_s = retry_s
        self._next = 0  # the endpoint tried first

    def _key(self, n: int) -> bytes:
        return self.prefix + f"{n:016d}".encode()

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST to the first member that answers; while none does (a member down, an election in
        progress: etcd answers 503 without a leader) retry with backoff for ``retry_s``. A retried
        append may land twice; the deriver skips the copy (a tx is never applied twice)."""
        deadline, delay = time.monotonic() + self.retry_s, 0.05
        while True:
            errors = []
            for i in range(len(self.endpoints)):
                url = self.endpoints[(self._next + i) % len(self.endpoints)]
                try:
                    resp = self._http.post(url + path, json=body)
                except httpx.HTTPError as exc:
                    errors.append(f"{url}: {exc}")
                    continue
                if resp.status_code >= 500:  # e.g. no leader while the cluster elects one
                    errors.append(f"{url}: {resp.status_code} {resp.text[:200]}")
                    continue
                if resp.status_code >= 400:
                    raise EtcdError(f"etcd at {url} refused: {resp.text[:300]}")
                self._next = (self._next + i) % len(self.endpoints)
                out: dict[str, Any] = resp.json()
                return out
            if time.monotonic() + delay > deadline:
                raise EtcdError("no etcd member answered: " + "; ".join(errors))
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def head(self) -> int:
        """The number of the last batch (-1: none)."""
        body = {
            "key": _b64(self.prefix),
            "range_end": _b64(_prefix_end(self.prefix)),
            "limit": 1,
            "sort_order": "DESCEND",
            "sort_target": "KEY",
            "keys_only": True,
        }
        kvs = self._post("/v3/kv/range", body).get("kvs", [])
        return int(base64.b64decode(kvs[0]["key"])[len(self.prefix) :]) if kvs else -1

    def append(self, batch: Sequence[bytes], time_ms: int) -> int:
        """Append one batch; its number. Retries the next number when another appender won one."""
        value = _b64(json.dumps({"t": time_ms, "e": [_b64(e) for e in batch]}).encode())
        n = self.head() + 1
        for _ in range(MAX_TRIES):
            key = _b64(self._key(n))
            out = self._post(
                "/v3/kv/txn",
                {
                    "compare": [{"key": key, "target": "CREATE", "create_revision": "0"}],
                    "success": [{"request_put": {"key": key, "value": value}}],
                },
            )
            if out.get("succeeded"):
                return n
            n += 1
        raise EtcdError(f"could not append after {MAX_TRIES} tries (is something flooding the log?)")

    def batches(self, first: int, limit: int) -> list[tuple[int, str, int, list[bytes]]]:
        """Batches ``first``, ``first + 1``, ... (at most ``limit``): (number, revision, time ms, entries)."""
        body = {"key": _b64(self._key(first)), "range_end": _b64(_prefix_end(self.prefix)), "limit": limit}
        out = []
        for kv in self._post("/v3/kv/range", body).get("kvs", []):
            n = int(base64.b64decode(kv["key"])[len(self.prefix) :])
            doc = json.loads(base64.b64decode(kv["value"]))
            out.append((n, str(kv["mod_revision"]), int(doc["t"]), [base64.b64decode(e) for e in doc["e"]]))
        return out

    def revision(self, n: int) -> str | None:
        kvs = self._post("/v3/kv/range", {"key": _b64(self._key(n))}).get("kvs", [])
        return str(kvs[0]["mod_revision"]) if kvs else None

    def close(self) -> None:
        self._http.close()


class EtcdReader:
    """Reads the batches after a cursor, in order (``poll`` like the EVM ``LogReader``)."""

    def __init__(self, log: EtcdLog, cursor: Cursor | None = None, *, span: int = 500) -> None:
        self.log, self.span = log, span
        self.cursor = cursor or Cursor()

    def poll(self) -> tuple[list[LogEntry], list[LogEntry]]:
        c = self.cursor
        if c.block_number >= 0 and self.log.revision(c.block_number) != c.block_hash:
            raise EtcdError(f"batch {c.block_number} changed after it was read: the log was rewritten")
        entries: list[LogEntry] = []
        batches = self.log.batches(c.block_number + 1, self.span)
        for n, rev, t, raw in batches:
            for i, e in enumerate(raw):
                entries.append(LogEntry(i, e, n, rev, t, i, ""))
        if batches:
            n, rev, _, _ = batches[-1]
            self.cursor = Cursor(n, rev)
        return entries, []


def now_ms() -> int:
    return int(time.time() * 1000)
