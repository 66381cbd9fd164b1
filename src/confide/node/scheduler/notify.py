"""Waiting for peers before a scheduled run, and webhook notifications about its outcome.

- ``wait_for_peers``: before a slot's ``run.start`` (which spends a grant use), every other party's
  node must answer its health check; a node that does not is asked again with exponential backoff
  (``backoff_ms``, doubling, at most 30 s) up to ``tries`` times, then the slot fails with
  ``PEER_DOWN`` naming the node — and no run was started, no grant use spent.
- ``Webhooks``: the node POSTs JSON events (``events.ledger_events``: runs started, awaiting
  release, failed, cancelled; release decisions needed and made; and the scheduler's ``slot.failed``)
  to each URL in ``node.json`` ``webhooks``, signed like every node request (RFC 9421 profile, the
  node key: receivers verify it against the ledger), from an outbox in the node's database: at
  least once, in the background, retried with backoff; a receiver that stays down never blocks a run.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx

from ...crypto.httpsig import sign_request
from ...crypto.identity import Identity
from .clock import Clock
from .store import SchedulerStore

__all__ = ["PeerDown", "Webhooks", "wait_for_peers"]

log = logging.getLogger("confide.node.scheduler")
MAX_BACKOFF_MS = 30_000
MAX_WEBHOOK_BACKOFF_MS = 300_000


class PeerDown(RuntimeError):
    """A peer's node stayed unreachable: the slot fails and no run is started."""


def wait_for_peers(
    probe: Callable[[str], str | None],
    orgs: Sequence[str],
    clock: Clock,
    stop: threading.Event,
    *,
    tries: int = 5,
    backoff_ms: int = 1_000,
    on_wait: Callable[[str], None] = lambda _: None,
) -> int:
    """Return the number of tries it took once every org's node answers (``probe`` -> None);
    raise :class:`PeerDown` after ``tries`` (``probe`` returns the reason a node did not answer)."""
    delay = backoff_ms
    for attempt in range(1, tries + 1):
        down = {org: why for org in orgs if (why := probe(org)) is not None}
        if not down:
            return attempt
        text = "; ".join(f"{org}'s node: {why}" for org, why in sorted(down.items()))
        if attempt == tries or stop.is_set():
            raise PeerDown(f"PEER_DOWN: after {attempt} tries, {text}")
        on_wait(f"waiting for peers (try {attempt} of {tries}): {text}")
        clock.wait(stop, delay)
        delay = min(delay * 2, MAX_BACKOFF_MS)
    raise AssertionError("unreachable")


class Webhooks:
    """Deliver events to every URL in ``node.json`` ``webhooks`` from a persistent outbox.

    ``notify`` writes one outbox row per URL (in the node's database, so a restart loses nothing
    queued) and wakes the delivery thread. Each POST is signed with the node key (RFC 9421 profile);
    a receiver that does not answer 2xx is tried again with backoff (1 s doubling, at most 5 min)
    up to ``tries`` times, then the row is marked ``failed`` and logged. Delivery is at least once:
    each event carries an ``id`` the receiver can de-duplicate on.
    """

    def __init__(
        self,
        urls: Sequence[str],
        identity: Identity,
        store: SchedulerStore,
        clock: Clock,
        *,
        verify: Any = True,
        tries: int = 10,
    ) -> None:
        self.urls, self.identity, self.tries = list(urls), identity, tries
        self.store, self.clock = store, clock
        self._http = httpx.Client(timeout=10.0, verify=verify)
        self._wake, self._stop = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.urls and self._thread is None:
            self._thread = threading.Thread(target=self._loop, daemon=True, name="webhooks")
            self._thread.start()

    def notify(self, *events: dict[str, Any], cursor: tuple[str, int] | None = None) -> None:
        """Queue ``events`` for every URL (and move ``cursor`` in the same transaction)."""
        if self.urls or cursor is not None:
            self.store.enqueue(list(events) if self.urls else [], self.urls, self.clock.now_ms(), cursor)
            self._wake.set()

    def deliver_due(self) -> int:
        """Try every delivery that is due now; returns how many were delivered."""
        done = 0
        for row in self.store.due_deliveries(self.clock.now_ms()):
            if self._stop.is_set():
                break
            why = self._post(str(row["url"]), json.dumps(row["body"], sort_keys=True).encode())
            attempts = int(row["attempts"]) + 1
            if why is None:
                self.store.delivered(row["id"], "delivered", attempts=attempts, error=None)
                done += 1
            elif attempts >= self.tries:
                self.store.delivered(row["id"], "failed", attempts=attempts, error=why[:500])
                log.warning("webhook %s: not delivered after %d tries (%s)", row["url"], attempts, why)
            else:
                due = self.clock.now_ms() + min(1_000 * 2 ** (attempts - 1), MAX_WEBHOOK_BACKOFF_MS)
                self.store.delivered(row["id"], "pending", attempts=attempts, error=why[:500], due_at=due)
        return done

    def _post(self, url: str, body: bytes) -> str | None:
        parts = urlsplit(url)
        headers = sign_request(self.identity, "POST", parts.path or "/", parts.query, body)
        headers["Content-Type"] = "application/json"
        try:
            resp = self._http.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
        return None if resp.status_code < 300 else f"HTTP {resp.status_code}"

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.deliver_due()
            except Exception:  # a database hiccup: try again on the next turn
                log.exception("webhook delivery failed")
            nxt = self.store.next_delivery_at()
            wait = 5_000 if nxt is None else max(0, min(nxt - self.clock.now_ms(), 5_000))
            self._wake.clear()
            self.clock.wait(self._wake, wait)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._http.close()
