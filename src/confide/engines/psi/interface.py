"""The PSI engine interface: two parties, one peer link, output to one party or to both.

An engine runs *one party* of a private set intersection. The host (a node; in tests and the bench a
thread) gives it the party's IDs, a :class:`PsiConfig` both sides agreed on (session, roles, who
gets the output) and a :class:`Transport`: an ordered, reliable, authenticated byte-message link to
the peer. The node carries the messages over its authenticated peer links later; in-process tests
wire two parties with :func:`confide.engines.psi.local.transport_pair`. The engine never opens a
connection itself, never touches a file, and returns a :class:`PsiResult`.

Security model — semi-honest (honest-but-curious): each party follows the protocol and may try to
learn more from what it sees. Under that model, with output ``receiver`` the receiver learns the
intersection and the size of the sender's (de-duplicated) set; the sender learns only the size of
the receiver's set. With output ``both`` each learns the intersection and the other's set size. A
*malicious* peer is not defended against beyond this: it can use a different set than the one it
was granted, or make the intersection wrong; what the engine does guarantee against any peer is
that malformed, truncated, out-of-order or oversized messages, low-order points and silence end
the run with :class:`PsiProtocolError` (never a hang, never a partial result). The transport must
authenticate the peer (the node's mutual-TLS/signed link): the engine adds no authentication.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = [
    "ECDH_PSI_CODE",
    "ECDH_PSI_CODE_DIGEST",
    "Output",
    "Progress",
    "PsiConfig",
    "PsiEngine",
    "PsiError",
    "PsiPeerAborted",
    "PsiProtocolError",
    "PsiResult",
    "Role",
    "Transport",
]

Role = Literal["receiver", "sender"]

ECDH_PSI_CODE = "ecdh-psi-x25519/v1"
"""The code a ``psi`` task names on the ledger for this engine (its ``code_digest`` is the SHA-256)."""
ECDH_PSI_CODE_DIGEST = hashlib.sha256(ECDH_PSI_CODE.encode()).hexdigest()
Output = Literal["receiver", "both"]
Progress = Callable[[int, int], None]
"""Called with (items done, items total) of this party's work; may be called from a worker thread."""

MAX_BATCH = 1 << 16


class PsiError(Exception):
    """Base of the PSI engine's errors."""


class PsiProtocolError(PsiError):
    """The peer (or its link) broke the protocol: malformed, truncated, unexpected or missing message."""


class PsiPeerAborted(PsiProtocolError):
    """The peer told us it aborted the run (its reason is in the message)."""


class Transport(Protocol):
    """An ordered, reliable, authenticated message link to the one peer.

    ``send`` may block for back-pressure but must not wait for the peer to call ``recv`` at that
    moment (each party sends from its own thread while it receives). ``recv`` returns the next
    message, raises ``TimeoutError`` if none arrives within ``timeout`` seconds and ``EOFError`` once
    the peer closed the link.
    """

    def send(self, message: bytes) -> None: ...

    def recv(self, timeout: float) -> bytes: ...


@dataclass(frozen=True, slots=True)
class PsiConfig:
    """What both parties must agree on (a mismatch of session, output or batch bound fails the hello).

    ``session`` names the task and run (it goes into the hash-to-curve domain separation tag, so
    values of one run say nothing about another's); ``role`` is this party's; ``output`` says who
    learns the intersection; ``idle_timeout`` bounds the wait for any peer message.
    """

    session: str
    role: Role
    output: Output = "receiver"
    batch_size: int = 1 << 14
    idle_timeout: float = 120.0

    def __post_init__(self) -> None:
        if self.role not in ("receiver", "sender"):
            raise ValueError(f"role must be 'receiver' or 'sender', not {self.role!r}")
        if self.output not in ("receiver", "both"):
            raise ValueError(f"output must be 'receiver' or 'both', not {self.output!r}")
        if not 1 <= self.batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be in 1..{MAX_BATCH}")
        if not self.session:
            raise ValueError("session must not be empty")

    @property
    def gets_output(self) -> bool:
        return self.output == "both" or self.role == "receiver"


@dataclass(frozen=True, slots=True)
class PsiResult:
    """One party's view. ``intersection`` (canonical NFC IDs, sorted) is None for a party without output."""

    intersection: list[str] | None
    own_count: int  # this party's IDs after canonicalization and de-duplication
    peer_count: int  # the peer's, as it announced

    @property
    def size(self) -> int | None:
        return None if self.intersection is None else len(self.intersection)


class PsiEngine(Protocol):
    """One party of a two-party PSI, run to completion over ``transport``."""

    name: str

    def run(
        self,
        ids: Iterable[str],
        transport: Transport,
        config: PsiConfig,
        progress: Progress | None = None,
    ) -> PsiResult: ...
