"""How a party runs a protocol, independent of the transport.

A protocol is written as a generator (one per party, and one for the dealer): it ``yield``s a
``Round`` — the messages it sends now (``{peer: bytes}``) and the peers it needs a message from
before it can go on — and receives ``{peer: bytes}`` with exactly those messages; its ``return``
value is the party's result (its output shares, never a revealed value).

``PartyRunner`` wraps the generator in the step API a node drives over HTTP::

    runner = PartyRunner(program)
    rnd = runner.start()                 # Round: send rnd.send, then wait for rnd.recv
    while rnd is not None:
        inbound = {peer: <bytes received from peer> for peer in rnd.recv}
        rnd = runner.step(inbound)
    runner.result

Why generators: the protocol reads top to bottom like the math (``z = yield from ctx.mul(x, y,
t)``), every interaction point is explicit, and the party object holds no thread or socket, so the
same code runs in-process (``transport.run_local``) or behind a node that stores the runner
between HTTP requests. Ordering, session binding and replay detection are in the message header
(``wire``); the transport only has to deliver bytes per (sender, receiver) in order.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from .errors import MpcError, MpcProtocolError

Inbound = dict[int, bytes]
T = TypeVar("T")


@dataclass(frozen=True)
class Round:
    send: dict[int, bytes] = field(default_factory=dict)
    recv: frozenset[int] = frozenset()


Program = Generator[Round, Inbound, T]


class PartyRunner(Generic[T]):
    """Step-by-step driver of one party's protocol generator."""

    def __init__(self, program: Program[T]) -> None:
        self._program = program
        self._pending: Round | None = None
        self._started = False
        self.done = False
        self._result: T | None = None

    def start(self) -> Round | None:
        if self._started:
            raise MpcError("runner already started")
        self._started = True
        return self._advance(None)

    def step(self, inbound: Inbound) -> Round | None:
        if not self._started or self.done or self._pending is None:
            raise MpcError("runner is not waiting for messages")
        missing = self._pending.recv - inbound.keys()
        extra = inbound.keys() - self._pending.recv
        if missing or extra:
            raise MpcProtocolError(
                f"inbound messages from {sorted(inbound)} but this step expects {sorted(self._pending.recv)}"
            )
        return self._advance(inbound)

    def _advance(self, inbound: Inbound | None) -> Round | None:
        try:
            rnd = next(self._program) if inbound is None else self._program.send(inbound)
        except StopIteration as stop:
            self.done = True
            self._pending = None
            self._result = stop.value
            return None
        self._pending = rnd
        return rnd

    @property
    def result(self) -> T:
        if not self.done:
            raise MpcError("protocol has not finished")
        return self._result  # type: ignore[return-value]
