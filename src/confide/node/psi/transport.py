"""The PSI engine's :class:`~confide.engines.psi.interface.Transport` over the nodes' HTTPS links.

Each node keeps one bounded inbox per session; the peer node POSTs every engine message, signed with
its node key, to ``/v1/psi/sessions/{session}/messages`` here, and our engine's ``recv`` pops it.
``send`` POSTs to the peer's inbox, in order (the engine sends from one thread at a time), retrying
while the peer answers 429 (its inbox is full: back-pressure) until ``send_timeout``.

With ``CONFIDE_PSI_WIRE_LOG`` set (tests and audits), every message body this node's inboxes accept
is appended to that file: the canary test searches it for plaintext.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time

import httpx

from ...crypto.httpsig import sign_request
from ...crypto.identity import Identity
from ...engines.psi.interface import MAX_BATCH, PsiProtocolError
from ...engines.psi.wire import HEADER, POINT
from ..peers import error_text

__all__ = ["INBOX_DEPTH", "MAX_MESSAGE", "HttpTransport", "Inbox", "PeerRefused"]

MAX_MESSAGE = HEADER.size + MAX_BATCH * POINT + 4096
INBOX_DEPTH = 32
PUT_WAIT_S = 2.0


class PeerRefused(PsiProtocolError):
    """The peer node refused a message (its session is gone, or it is not the peer we think)."""


class Inbox:
    """One session's bounded queue of peer messages; an exception put in it is raised by ``recv``."""

    def __init__(self, depth: int = INBOX_DEPTH) -> None:
        self._q: queue.Queue[bytes | None] = queue.Queue(maxsize=depth)
        self._log = os.environ.get("CONFIDE_PSI_WIRE_LOG")
        self._log_lock = threading.Lock()
        self._failed: BaseException | None = None

    def put(self, message: bytes, wait: float = PUT_WAIT_S) -> bool:
        """Queue one message; ``False`` if the inbox stayed full for ``wait`` seconds."""
        try:
            self._q.put(message, timeout=wait)
        except queue.Full:
            return False
        if self._log:
            with self._log_lock, open(self._log, "ab") as fh:
                fh.write(message)
        return True

    def fail(self, exc: BaseException | None) -> None:
        """Make the next ``recv`` raise ``exc`` (``None``: the link is closed, ``EOFError``), ahead
        of any message still queued: an abort or a refusal must not wait behind protocol traffic."""
        with self._log_lock:
            if self._failed is None:
                self._failed = exc if exc is not None else EOFError("the link was closed")
        with contextlib.suppress(queue.Full):
            self._q.put_nowait(None)  # wake a waiting recv; a full queue has a message to wake it anyway

    def get(self, timeout: float) -> bytes:
        if self._failed is not None:
            raise self._failed
        try:
            item = self._q.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError from None
        if self._failed is not None:
            raise self._failed
        if item is None:  # a wake-up whose failure was already raised (cannot happen before it is set)
            raise EOFError("the link was closed")
        return item


class HttpTransport:
    """One end of a PSI link between two nodes: our inbox in, the peer node's inbox out."""

    def __init__(
        self,
        inbox: Inbox,
        *,
        http: httpx.Client,
        identity: Identity,
        peer_url: str,
        peer_org: str,
        session: str,
        send_timeout: float = 60.0,
    ) -> None:
        self._inbox, self._http, self._identity = inbox, http, identity
        self._url, self._org = peer_url.rstrip("/"), peer_org
        self._path = f"/v1/psi/sessions/{session}/messages"
        self._send_timeout = send_timeout
        self.sent_bytes = 0

    def send(self, message: bytes) -> None:
        deadline = time.monotonic() + self._send_timeout
        delay = 0.02
        while True:
            headers = sign_request(self._identity, "POST", self._path, "", message)
            headers["Content-Type"] = "application/octet-stream"
            try:
                resp = self._http.post(self._url + self._path, content=message, headers=headers)
            except httpx.HTTPError as exc:
                raise PsiProtocolError(f"{self._org}'s node is unreachable: {exc}") from None
            if resp.status_code in (200, 202):
                self.sent_bytes += len(message)
                return
            if resp.status_code != 429 or time.monotonic() > deadline:
                raise PeerRefused(f"{self._org}'s node refused a PSI message: {error_text(resp)}")
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    def recv(self, timeout: float) -> bytes:
        return self._inbox.get(timeout)
