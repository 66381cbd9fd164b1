"""Waiting for peers before a scheduled run, and webhook notifications about its outcome.

- ``wait_for_peers``: before a slot's ``run.start`` (which spends a grant use), every other party's
  node must answer its health check; a node that does not is asked again with exponential backoff
  (``backoff_ms``, doubling, at most 30 s) up to ``tries`` times, then the slot fails with
  ``PEER_DOWN`` naming the node — and no run was started, no grant use spent.
- ``Webhooks``: the node POSTs a JSON event (``run.started``, ``run.awaiting_release``,
  ``run.failed``, ``slot.failed``) to each URL in ``node.json`` ``webhooks``, signed like every
  node request (RFC 9421 profile, the node key: receivers verify it against the ledger). Delivery is
  in the background, 3 tries; a receiver that stays down is logged, never blocks a run.
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

__all__ = ["PeerDown", "Webhooks", "wait_for_peers"]

log = logging.getLogger("confide.node.scheduler")
MAX_BACKOFF_MS = 30_000


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
    def __init__(
        self, urls: Sequence[str], identity: Identity, *, verify: Any = True, tries: int = 3
    ) -> None:
        self.urls, self.identity, self.tries = list(urls), identity, tries
        self._http = httpx.Client(timeout=10.0, verify=verify)

    def notify(self, event: dict[str, Any]) -> list[threading.Thread]:
        """Deliver ``event`` to every URL in the background; returns the delivery threads."""
        body = json.dumps(event, sort_keys=True).encode()
        threads = [threading.Thread(target=self._deliver, args=(u, body), daemon=True) for u in self.urls]
        for t in threads:
            t.start()
        return threads

    def _deliver(self, url: str, body: bytes) -> None:
        parts = urlsplit(url)
        for attempt in range(1, self.tries + 1):
            headers = sign_request(self.identity, "POST", parts.path or "/", parts.query, body)
            headers["Content-Type"] = "application/json"
            try:
                resp = self._http.post(url, content=body, headers=headers)
                if resp.status_code < 300:
                    return
                why = f"HTTP {resp.status_code}"
            except httpx.HTTPError as exc:
                why = str(exc)
            if attempt < self.tries:
                threading.Event().wait(0.2 * 2**attempt)
        log.warning("webhook %s: not delivered after %d tries (%s)", url, self.tries, why)

    def close(self) -> None:
        self._http.close()
