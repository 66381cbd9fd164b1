"""TCP connections carried over a PSI :class:`~.interface.Transport`: how an engine that opens its own
sockets (SecretFlow SPU's link) still talks to the peer only over the nodes' authenticated link.

Each side runs one :class:`Tunnel`. The local engine process is told that the peer lives at
``127.0.0.1:{listen_port}`` (our tunnel); every connection it opens there is announced to the peer
tunnel, which opens a connection to *its* engine process's server (``127.0.0.1:{server_port}``) and
the bytes flow both ways as frames:

====  =============================  ===========================================================
kind  layout                         meaning
====  =============================  ===========================================================
O     ``O`` conn(u32)                a new connection (ids of the receiver side are even, the
                                     sender's odd, so the two sides never pick the same id)
D     ``D`` conn(u32) bytes          data for one connection (at most :data:`CHUNK` bytes)
C     ``C`` conn(u32)                this direction of the connection is finished
K     ``K``                          keep-alive (sent every :data:`KEEPALIVE_S` seconds)
E     ``E`` JSON                     this side's engine is done (its counts)
A     ``A`` JSON                     this side aborted (``reason``)
====  =============================  ===========================================================

A frame that is malformed, too long, names an unknown connection or arrives after the peer's end,
and a peer silent for ``idle_timeout`` seconds, stop the tunnel with :class:`PsiProtocolError`; the
engine then kills its process. Both sockets are loopback only; the engine process is the only
thing meant to connect to ``listen_port`` (a process of the same machine could try too: run nodes on
hosts you trust, as for the node's own files).
"""

from __future__ import annotations

import contextlib
import json
import queue
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from .interface import PsiPeerAborted, PsiProtocolError, Transport

__all__ = ["CHUNK", "KEEPALIVE_S", "Tunnel"]

CHUNK = 1 << 20
KEEPALIVE_S = 5.0
CONNECT_WAIT_S = 60.0
_ID = struct.Struct(">I")


class _Conn:
    """One carried TCP connection. Bytes from the peer are written to the socket by the tunnel's
    receive loop itself once connected (one thread hop less per message: SPU's protocols are chatty);
    until then they wait in a queue that the connecting thread drains. A reader thread turns what the
    local engine writes into frames."""

    def __init__(self, tunnel: Tunnel, cid: int, sock: socket.socket | None) -> None:
        self.tunnel, self.cid, self.sock = tunnel, cid, sock
        self.pending: queue.Queue[bytes | None] = queue.Queue()
        self._lock = threading.Lock()
        self.direct = sock is not None
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def start(self) -> None:
        if self.sock is None:
            threading.Thread(target=self._connect, daemon=True, name=f"tunnel-c{self.cid}").start()
        else:
            threading.Thread(target=self._reader, daemon=True, name=f"tunnel-r{self.cid}").start()

    def deliver(self, data: bytes | None) -> None:
        """Bytes from the peer (``None``: its side is finished). Called by the receive loop only."""
        with self._lock:
            if not self.direct:
                self.pending.put(data)
                return
        self._write(data)

    def _write(self, data: bytes | None) -> None:
        assert self.sock is not None
        try:
            if data is None:
                self.sock.shutdown(socket.SHUT_WR)
            else:
                self.sock.sendall(data)
        except OSError:
            # The local engine closed (or reset) its end: that is its business, and if it failed,
            # the engine's own result says so. Bytes for it are dropped; the peer is not blamed.
            self.close()

    def _connect(self) -> None:
        deadline = time.monotonic() + CONNECT_WAIT_S
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", self.tunnel.server_port), timeout=5.0)
                break
            except OSError as exc:
                if time.monotonic() > deadline or self.tunnel.stopped.is_set():
                    self.tunnel.fail(PsiProtocolError(f"the local SPU worker does not answer: {exc}"))
                    return
                time.sleep(0.02)
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        threading.Thread(target=self._reader, daemon=True, name=f"tunnel-r{self.cid}").start()
        while True:  # drain what came while connecting, then hand writing to the receive loop
            with self._lock:
                try:
                    data = self.pending.get_nowait()
                except queue.Empty:
                    self.direct = True
                    return
            self._write(data)

    def _reader(self) -> None:
        assert self.sock is not None
        head = b"D" + _ID.pack(self.cid)
        try:
            while True:
                try:
                    data = self.sock.recv(CHUNK)
                except OSError:  # the local engine reset its end (it stops its link when done): a close
                    data = b""
                if not data:
                    break
                self.tunnel.send(head + data)
            self.tunnel.send(b"C" + _ID.pack(self.cid))
        except (OSError, PsiProtocolError, TimeoutError) as exc:  # sending to the peer failed
            if not self.tunnel.stopped.is_set():
                self.tunnel.fail(
                    PsiProtocolError(f"the link to the peer broke (connection {self.cid}): {exc}")
                )

    def close(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()


class Tunnel:
    """One side of the carried connections; ``fail`` (or the peer) stops it with the reason."""

    def __init__(
        self,
        transport: Transport,
        *,
        server_port: int,
        odd_ids: bool,
        idle_timeout: float,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.transport, self.server_port, self.idle_timeout = transport, server_port, idle_timeout
        self._next_id = 1 if odd_ids else 0
        self._send_lock, self._lock = threading.Lock(), threading.Lock()
        self._conns: dict[int, _Conn] = {}
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.listen_port: int = self._listener.getsockname()[1]
        self.stopped = threading.Event()
        self.error: BaseException | None = None
        self._peer_end: dict[str, Any] | None = None
        self._ended = threading.Event()
        self._on_error = on_error
        self.bytes_in = self.bytes_out = 0

    def set_server_port(self, port: int) -> None:
        """The local engine's server moved (it had to pick another port): connect there from now on."""
        self.server_port = port

    # -- life cycle --------------------------------------------------------------------------------
    def start(self) -> None:
        for target, name in ((self._accept, "accept"), (self._recv_loop, "recv"), (self._keepalive, "ka")):
            threading.Thread(target=target, daemon=True, name=f"tunnel-{name}").start()

    def stop(self) -> None:
        self.stopped.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            conns = list(self._conns.values())
        for c in conns:
            c.close()

    def fail(self, exc: BaseException) -> None:
        """Stop with ``exc`` as the reason (the first reason wins); tells the engine via ``on_error``."""
        with self._lock:
            if self.error is not None or self.stopped.is_set():
                return
            self.error = exc
        self.stop()
        self._ended.set()
        if self._on_error is not None:
            self._on_error(exc)

    # -- frames out ---------------------------------------------------------------------------------
    def send(self, frame: bytes) -> None:
        with self._send_lock:
            self.transport.send(frame)
            self.bytes_out += len(frame)

    def send_end(self, info: dict[str, Any]) -> None:
        self.send(b"E" + json.dumps(info).encode())

    def send_abort(self, reason: str) -> None:
        with contextlib.suppress(Exception):
            self.send(b"A" + json.dumps({"reason": reason[:500]}).encode())

    def wait_end(self, timeout: float) -> dict[str, Any]:
        """The peer's ``E`` info, once it came; raises the tunnel's error or a timeout as PsiProtocolError."""
        if not self._ended.wait(timeout):
            raise PsiProtocolError(f"the peer did not finish within {timeout:.0f} s")
        if self.error is not None:
            raise self.error
        assert self._peer_end is not None
        return self._peer_end

    def _keepalive(self) -> None:
        while not self.stopped.wait(KEEPALIVE_S):
            try:
                self.send(b"K")
            except Exception as exc:
                self.fail(PsiProtocolError(f"the link to the peer broke: {exc}"))

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                cid, self._next_id = self._next_id, self._next_id + 2
                conn = self._conns[cid] = _Conn(self, cid, sock)
            try:
                self.send(b"O" + _ID.pack(cid))
            except Exception as exc:
                self.fail(PsiProtocolError(f"the link to the peer broke: {exc}"))
                return
            conn.start()

    # -- frames in ----------------------------------------------------------------------------------
    def _recv_loop(self) -> None:
        last = time.monotonic()
        while not self.stopped.is_set():
            try:
                frame = self.transport.recv(1.0)
            except TimeoutError:
                if time.monotonic() - last > self.idle_timeout:
                    self.fail(PsiProtocolError(f"the peer sent nothing for {self.idle_timeout:.0f} s"))
                continue
            except EOFError:
                if not self._ended.is_set():
                    self.fail(PsiProtocolError("the peer closed the link before the end of the protocol"))
                return
            except PsiProtocolError as exc:
                self.fail(exc)
                return
            last = time.monotonic()
            self.bytes_in += len(frame)
            try:
                self._dispatch(frame)
            except PsiProtocolError as exc:
                self.fail(exc)
                return

    def _dispatch(self, frame: bytes) -> None:
        kind = frame[:1]
        if kind == b"K":
            return
        if kind in (b"E", b"A"):
            try:
                info = json.loads(frame[1:])
                if not isinstance(info, dict):
                    raise ValueError("not an object")
            except ValueError as exc:
                raise PsiProtocolError(f"malformed {kind.decode()} frame from the peer: {exc}") from None
            if kind == b"A":
                raise PsiPeerAborted(f"the peer aborted: {str(info.get('reason', '?'))[:500]}")
            self._peer_end = info
            self._ended.set()
            return
        if kind not in (b"O", b"D", b"C") or len(frame) < 5:
            raise PsiProtocolError(
                f"malformed tunnel frame from the peer (kind {kind!r}, {len(frame)} bytes)"
            )
        if len(frame) > 5 + CHUNK:
            raise PsiProtocolError(f"oversized tunnel frame from the peer ({len(frame)} bytes)")
        (cid,) = _ID.unpack_from(frame, 1)
        with self._lock:
            conn = self._conns.get(cid)
            if kind == b"O":
                if conn is not None or cid % 2 == self._next_id % 2:
                    raise PsiProtocolError(f"the peer opened connection {cid}, which is not its to open")
                conn = self._conns[cid] = _Conn(self, cid, None)
                conn.start()
                return
        if conn is None:
            raise PsiProtocolError(f"the peer sent data for unknown connection {cid}")
        conn.deliver(frame[5:] if kind == b"D" else None)
