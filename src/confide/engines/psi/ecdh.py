"""Built-in ECDH-PSI over X25519 (semi-honest), streamed in batches over a process pool.

Protocol (both parties symmetric except for who receives the double-masked values):

1. Canonicalize: every ID is NFC-normalized and encoded as UTF-8 (no other folding: case, spaces and
   leading zeros are significant — normalize phone numbers before). Duplicates (after NFC, so a
   precomposed "é" and "e" + U+0301 are one ID) are removed first; set sizes are the de-duplicated ones.
2. Each party draws a fresh 32-byte X25519 secret ``k`` (``secrets``) and a uniformly random order of
   its IDs (argsort of ``secrets`` 64-bit keys), so the order of what it sends says nothing about its
   input order.
3. HELLO both ways: role, output mode, set size, batch bound, and a digest of the hash-to-curve DST
   ``CONFIDE-V01-PSI-ECDH-<session>-with-curve25519_XMD:SHA-512_ELL2_NU_`` (RFC 9380 NU suite, see
   :mod:`.h2c`): different sessions, outputs or roles stop here.
4. MASKED: each sends ``X25519(k, u(Q(id)))`` = u(clamp(k)·Q(id)) for its IDs in its shuffled order,
   in batches. Clamping makes the scalar a multiple of 8, which clears the cofactor of Q.
5. Each applies its key to the peer's MASKED points: ``X25519(k_b, u(clamp(k_a)·Q)) =
   u(clamp(k_a)·clamp(k_b)·Q)``, the same value from both sides for a common ID. A party that learns
   the output keeps these double-masked values of the peer (low 16 bytes) in a set; a party whose
   peer learns the output returns them as DOUBLE in the order received, so the peer gets its own
   items' double-masked values in its own shuffled order and matches them against its set.

Output ``receiver``: the receiver keeps the set and gets DOUBLE; the sender sends no set and gets
nothing back. Output ``both``: both do both. Either way each party does |own| + |peer| scalar
multiplications, all in the pool.

Truncation: two different double-masked points agree on their low 128 bits with probability about
2^-128 (u-coordinates of a prime-order group, close to uniform), so a false match among
|A|·|B| pairs has probability <= |A|·|B|·2^-128 (1e-22 for 1e8 x 1e8).

Memory: the party's canonical IDs (de-duplicated) and 4-byte-per-ID shuffled order; a bounded
number of batches in flight (``2·workers + 2`` of its own, plus the peer's batches being masked);
an output party also holds 16 bytes per own ID (returned DOUBLE) and a set of the peer's 16-byte
values (about 80 B per peer ID in CPython). Nothing grows with the number of batches sent.

Errors: any malformed, truncated, out-of-order, oversized or unexpected message, a low-order or
non-canonical point, a closed link or ``idle_timeout`` of silence raises :class:`PsiProtocolError`
(the peer is sent ABORT with the reason where the link still works); no partial result is returned.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import queue
import secrets
import threading
import time
import unicodedata
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from typing import Any

import numpy as np

from . import wire
from ._work import mask_ids, remask_points
from .h2c import SUITE
from .interface import Progress, PsiConfig, PsiError, PsiPeerAborted, PsiProtocolError, PsiResult, Transport

__all__ = ["EcdhPsi", "canonical_ids", "new_pool", "session_dst"]

CONTEXT_LABEL = b"confide/psi-ecdh/v1\x00"
_POLL = 0.2


def session_dst(session: str) -> bytes:
    """The RFC 9380 domain separation tag of one PSI session (longer than 255 bytes: §5.3.3 applies)."""
    return f"CONFIDE-V01-PSI-ECDH-{session}-with-{SUITE}".encode()


def canonical_ids(ids: Iterable[str]) -> list[bytes]:
    """NFC + UTF-8 of each ID, de-duplicated, in first-seen order."""
    out: dict[bytes, None] = {}
    nfc = unicodedata.normalize
    for pos, s in enumerate(ids):
        if not isinstance(s, str):
            raise TypeError(f"PSI ID at position {pos} is {type(s).__name__}, not str")
        try:
            out[nfc("NFC", s).encode("utf-8")] = None
        except UnicodeEncodeError as exc:
            raise ValueError(f"PSI ID at position {pos} is not valid Unicode (lone surrogate)") from exc
    return list(out)


def new_pool(workers: int | None = None) -> ProcessPoolExecutor:
    """A ``spawn`` process pool (safe from threaded hosts) with one worker per core by default.
    Each worker exits on its own when the process that made the pool dies, even by SIGKILL."""
    return ProcessPoolExecutor(
        max_workers=workers or os.cpu_count() or 1,
        mp_context=get_context("spawn"),
        initializer=_exit_with_parent,
        initargs=(os.getpid(),),
    )


def _exit_with_parent(parent: int, every_s: float = 1.0) -> None:
    """In a pool worker: a daemon thread that ends the worker once ``parent`` is gone (a killed node
    must not leave workers holding its memory or its cores)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every_s)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def _shuffle(n: int) -> np.ndarray[Any, np.dtype[np.int64]]:
    """A uniformly random permutation of range(n) from the OS CSPRNG (ties of 64-bit keys: ~n²/2^65)."""
    keys = np.frombuffer(secrets.token_bytes(8 * n), dtype=np.uint64)
    return np.argsort(keys, kind="stable").astype(np.int64)


class EcdhPsi:
    """The built-in engine. ``executor``: a shared process pool (else one per run, ``workers`` big)."""

    name = "ecdh-x25519"

    def __init__(self, executor: Executor | None = None, workers: int | None = None) -> None:
        self._executor = executor
        self._workers = workers or os.cpu_count() or 1

    def run(
        self,
        ids: Iterable[str],
        transport: Transport,
        config: PsiConfig,
        progress: Progress | None = None,
    ) -> PsiResult:
        own = canonical_ids(ids)
        pool = self._executor or new_pool(self._workers)
        try:
            return _Run(own, transport, config, pool, self._workers, progress).run()
        finally:
            if self._executor is None:
                pool.shutdown(wait=True, cancel_futures=True)


class _Run:
    """One party's run: a producer thread (own batches into the pool), a sender thread (futures to
    messages, in order) and the calling thread receiving and dispatching peer messages."""

    def __init__(
        self,
        own: list[bytes],
        transport: Transport,
        cfg: PsiConfig,
        pool: Executor,
        workers: int,
        progress: Progress | None,
    ) -> None:
        self.own, self.t, self.cfg, self.pool, self.progress = own, transport, cfg, pool, progress
        self.dst = session_dst(cfg.session)
        self.key = secrets.token_bytes(32)
        self.perm = _shuffle(len(own))
        self.outq: queue.Queue[tuple[int, int, Future[bytes] | bytes] | None] = queue.Queue()
        self.window = threading.Semaphore(2 * workers + 2)
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.lock = threading.Lock()
        self.done = 0
        self.total = len(own)
        self.send_lock = threading.Lock()

    # -- threads ---------------------------------------------------------------------------------
    def _fail(self, exc: BaseException) -> None:
        with self.lock:
            if self.error is None:
                self.error = exc
        self.stop.set()

    def _tick(self, count: int) -> None:
        with self.lock:
            self.done += count
            done, total = self.done, self.total
        if self.progress is not None:
            self.progress(done, total)

    def _ticked(self, count: int, _fut: Future[bytes]) -> None:
        self._tick(count)

    def _check(self, fut: Future[bytes]) -> None:
        """A failed pool task (bad peer point, dead pool) stops the run at once."""
        exc = None if fut.cancelled() else fut.exception()
        if exc is not None:
            self._fail(PsiError("the PSI worker pool died") if isinstance(exc, BrokenProcessPool) else exc)

    def _send(self, message: bytes) -> None:
        with self.send_lock:
            self.t.send(message)

    def _producer(self) -> None:
        try:
            b = self.cfg.batch_size
            for seq, start in enumerate(range(0, len(self.own), b)):
                while not self.window.acquire(timeout=_POLL):
                    if self.stop.is_set():
                        return
                if self.stop.is_set():
                    return
                own = self.own
                batch = [own[i] for i in self.perm[start : start + b].tolist()]
                fut = self.pool.submit(mask_ids, self.key, self.dst, batch)
                fut.add_done_callback(self._check)
                self.outq.put((wire.MASKED, seq, fut))
        except BaseException as exc:
            self._fail(exc)

    def _sender(self) -> None:
        try:
            while not self.stop.is_set():
                try:
                    item = self.outq.get(timeout=_POLL)
                except queue.Empty:
                    continue
                if item is None:
                    return
                kind, seq, body = item
                if isinstance(body, Future):
                    payload = self._result(body)
                    if payload is None:
                        return
                else:
                    payload = body
                width = wire.POINT if kind == wire.MASKED else wire.TRUNC
                count = len(payload) // width
                self._send(wire.encode(kind, seq, count, payload))
                if kind == wire.MASKED:
                    self.window.release()
                    self._tick(count)
        except BaseException as exc:
            self._fail(exc)

    def _result(self, fut: Future[bytes]) -> bytes | None:
        while True:
            try:
                return fut.result(timeout=_POLL)
            except TimeoutError:
                if self.stop.is_set():
                    return None
            except BrokenProcessPool as exc:
                raise PsiError("the PSI worker pool died") from exc

    # -- receiving -------------------------------------------------------------------------------
    def _recv(self) -> wire.Message:
        deadline = time.monotonic() + self.cfg.idle_timeout
        while True:
            if self.error is not None:
                raise self.error
            try:
                data = self.t.recv(_POLL)
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise PsiProtocolError(
                        f"no message from the PSI peer for {self.cfg.idle_timeout:g} s"
                    ) from None
                continue
            except EOFError:
                raise PsiProtocolError("the PSI peer closed the link mid-protocol") from None
            msg = wire.decode(data, self.cfg.batch_size)
            if msg.kind == wire.ABORT:
                reason = msg.payload.decode("utf-8", "replace")
                raise PsiPeerAborted(f"the PSI peer aborted: {reason}")
            return msg

    def _hello(self) -> wire.Hello:
        context = hashlib.sha256(CONTEXT_LABEL + self.dst).digest()
        mine = wire.Hello(self.cfg.role, self.cfg.output, len(self.own), self.cfg.batch_size, context)
        self._send(wire.encode_hello(mine))
        msg = self._recv()
        if msg.kind != wire.HELLO:
            raise PsiProtocolError(f"expected hello, got message type {msg.kind}")
        peer = wire.parse_hello(msg)
        if peer.context != context:
            raise PsiProtocolError("the PSI peer runs another session (context digest differs)")
        if peer.role == self.cfg.role:
            raise PsiProtocolError(f"both parties claim the role {peer.role!r}")
        if peer.output != self.cfg.output or peer.batch != self.cfg.batch_size:
            raise PsiProtocolError("the PSI peer's output mode or batch bound differs from ours")
        return peer

    def run(self) -> PsiResult:
        threads = [threading.Thread(target=f, daemon=True) for f in (self._sender, self._producer)]
        local: deque[Future[bytes]] = deque()
        try:
            peer = self._hello()
            with self.lock:
                self.total = len(self.own) + peer.n
            threads[0].start()
            threads[1].start()
            result = self._loop(peer, local)
            threads[1].join()
            self.outq.put(None)
            while threads[0].is_alive():
                threads[0].join(_POLL)
                if self.error is not None:
                    raise self.error
            if self.error is not None:
                raise self.error
            return result
        except BaseException as exc:
            self._fail(exc)
            for fut in local:
                fut.cancel()
            for th in threads:
                if th.is_alive():
                    th.join(2.0)
            if not isinstance(exc, PsiPeerAborted):
                with contextlib.suppress(Exception):
                    self._send(wire.encode(wire.ABORT, 0, 0, str(exc).encode()[:4096]))
            raise

    def _loop(self, peer: wire.Hello, local: deque[Future[bytes]]) -> PsiResult:
        mine = self.cfg.gets_output
        reply = peer.output == "both" or peer.role == "receiver"
        want_double = len(self.own) if mine else 0
        masked = doubles = m_seq = d_seq = 0
        returned = bytearray()
        peer_set: set[bytes] = set()

        def drain(block: bool) -> None:
            while local and (block or local[0].done()):
                blob = self._wait(local.popleft())
                peer_set.update(blob[i : i + wire.TRUNC] for i in range(0, len(blob), wire.TRUNC))

        while masked < peer.n or doubles < want_double:
            msg = self._recv()
            if msg.kind == wire.MASKED:
                if msg.seq != m_seq or masked + msg.count > peer.n:
                    raise PsiProtocolError(f"unexpected masked batch {msg.seq} ({msg.count} items)")
                m_seq, masked = m_seq + 1, masked + msg.count
                fut = self.pool.submit(remask_points, self.key, msg.payload, wire.TRUNC)
                fut.add_done_callback(self._check)
                fut.add_done_callback(functools.partial(self._ticked, msg.count))
                if reply:
                    self.outq.put((wire.DOUBLE, msg.seq, fut))
                if mine:
                    local.append(fut)
            elif msg.kind == wire.DOUBLE:
                if not mine or msg.seq != d_seq or doubles + msg.count > want_double:
                    raise PsiProtocolError(f"unexpected double-masked batch {msg.seq} ({msg.count} items)")
                d_seq, doubles = d_seq + 1, doubles + msg.count
                returned += msg.payload
            else:
                raise PsiProtocolError(f"unexpected message type {msg.kind} after hello")
            drain(False)
        drain(True)
        if not mine:
            return PsiResult(None, len(self.own), peer.n)
        hits: list[bytes] = []
        own, b, view = self.own, self.cfg.batch_size, bytes(returned)
        for start in range(0, len(own), b):
            for j, i in enumerate(self.perm[start : start + b].tolist(), start):
                if view[j * wire.TRUNC : (j + 1) * wire.TRUNC] in peer_set:
                    hits.append(own[i])
        hits.sort()
        return PsiResult([h.decode("utf-8") for h in hits], len(own), peer.n)

    def _wait(self, fut: Future[bytes]) -> bytes:
        result = self._result(fut)
        if result is None:
            raise self.error or PsiError("PSI run stopped")
        return result
