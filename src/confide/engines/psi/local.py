"""In-process transport and a two-party runner, for tests and the bench (not for production links)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

from .interface import Progress, PsiConfig, PsiEngine, PsiResult

__all__ = ["QueueTransport", "run_pair", "transport_pair"]

_CLOSED = object()


class QueueTransport:
    """One end of an in-memory link: ``send`` puts on the peer's queue, ``recv`` takes from ours."""

    def __init__(self, inbox: queue.Queue[Any], outbox: queue.Queue[Any]) -> None:
        self._inbox, self._outbox = inbox, outbox
        self.sent: list[bytes] | None = None  # set to [] to record what this end sends

    def send(self, message: bytes) -> None:
        if self.sent is not None:
            self.sent.append(message)
        self._outbox.put(message)

    def recv(self, timeout: float) -> bytes:
        try:
            item = self._inbox.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError from None
        if item is _CLOSED:
            self._inbox.put(_CLOSED)
            raise EOFError("link closed")
        message: bytes = item
        return message

    def close(self) -> None:
        """The peer's ``recv`` raises ``EOFError`` after the messages already sent."""
        self._outbox.put(_CLOSED)


def transport_pair() -> tuple[QueueTransport, QueueTransport]:
    a_to_b: queue.Queue[Any] = queue.Queue()
    b_to_a: queue.Queue[Any] = queue.Queue()
    return QueueTransport(b_to_a, a_to_b), QueueTransport(a_to_b, b_to_a)


def run_pair(
    engines: tuple[PsiEngine, PsiEngine],
    ids: tuple[Sequence[str], Sequence[str]],
    configs: tuple[PsiConfig, PsiConfig],
    progress: tuple[Progress | None, Progress | None] = (None, None),
    transports: tuple[QueueTransport, QueueTransport] | None = None,
) -> tuple[PsiResult, PsiResult]:
    """Run both parties in two threads; returns both results or raises the first party's error."""
    ends = transports or transport_pair()
    results: list[PsiResult | None] = [None, None]
    errors: list[BaseException | None] = [None, None]

    def party(i: int) -> Callable[[], None]:
        def go() -> None:
            try:
                results[i] = engines[i].run(ids[i], ends[i], configs[i], progress[i])
            except BaseException as exc:
                errors[i] = exc
                ends[i].close()

        return go

    threads = [threading.Thread(target=party(i), daemon=True) for i in (0, 1)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for err in errors:
        if err is not None:
            raise err
    a, b = results
    assert a is not None and b is not None
    return a, b
