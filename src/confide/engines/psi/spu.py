"""SecretFlow SPU's PSI (RR22, KKRT or ECDH) behind the same :class:`~.interface.PsiEngine` interface.

SPU pins numpy<2 and Python<3.12, so it never enters Confide's environment: it lives in its own venv
(``.spu-venv``, made from ``envs/spu/requirements.txt`` by ``make spu-env``; ``make test`` makes it)
and runs as an out-of-process worker (:mod:`.spu_worker`). One run of :class:`SpuPsi`:

1. canonicalizes this party's IDs as the built-in engine does (NFC, de-duplicated; Arrow compute,
   so 10^8 IDs stay cheap) and exchanges a hello over the transport (engine, session, roles,
   output, unique count); a mismatch aborts both sides before any ID is touched by SPU;
2. writes the IDs to a CSV in a private (0700) work folder — an ID holding a control character or
   starting with ``~`` is written as ``~`` + hex of its UTF-8, an injective encoding both sides
   share, because SPU's CSV reader cannot carry line breaks;
3. hands a warm worker (SPU already imported) the job; the worker's link to the peer goes through a
   :class:`~.tunnel.Tunnel` over the transport, i.e. over the nodes' authenticated link — SPU opens
   no port to the network, only loopback ones;
4. reports SPU's progress, reads the output CSV (the intersection, if this party gets it), exchanges
   an end frame and removes the work folder.

The receiver is SPU rank 0; ``output="both"`` is SPU's ``broadcast_result``. With an empty set on
either side nothing is run (both know the counts from the hello). Security model: SPU's semi-honest
protocols; what the receiver learns is as for the built-in engine (the intersection and the peer's
set size). If the SPU venv is missing the engine says how to make it (:class:`SpuUnavailable`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from .interface import Progress, PsiConfig, PsiError, PsiPeerAborted, PsiProtocolError, PsiResult, Transport
from .tunnel import Tunnel

__all__ = [
    "SPU_PROTOCOLS",
    "SpuPsi",
    "SpuUnavailable",
    "SpuWorker",
    "SpuWorkers",
    "canonical_array",
    "decode_sorted",
    "encode_ids",
    "spu_code",
    "spu_python",
]

SPU_PROTOCOLS = {"spu-rr22": "RR22", "spu-kkrt": "KKRT", "spu-ecdh": "ECDH"}
WORKER = Path(__file__).with_name("spu_worker.py")
READY_WAIT_S = 60.0
CSV_CHUNK = 1 << 20
LINK_WINDOW = 64
"""SPU link's throttle window (unacknowledged messages in flight; SPU's default is 10): the tunnel adds
latency to every round trip, a wider window hides it."""
DEDUP_MAX = 20_000_000
"""Up to this many IDs a party de-duplicates in Arrow and tells SPU its keys are unique (faster);
above it the IDs stream to the CSV as they come and SPU de-duplicates them in its on-disk buckets,
so memory stays flat for 10^8 IDs."""
_UNSAFE = r"^~|[\x00-\x1f\x7f]"
_TRACE = re.compile(r"Trace has been written to (/tmp/psi_[A-Za-z0-9_-]+\.trace)")


def spu_code(engine: str) -> str:
    """The code a ``psi`` task names on the ledger for one SPU protocol (``engine`` in SPU_PROTOCOLS)."""
    return f"spu-psi-{SPU_PROTOCOLS[engine].lower()}/v1"


class SpuUnavailable(PsiError):
    """SPU's venv is missing or broken on this machine (the message says how to make it)."""


def spu_python() -> Path:
    """``$CONFIDE_SPU_PYTHON``, else ``.spu-venv/bin/python`` beside Confide's own venv."""
    env = os.environ.get("CONFIDE_SPU_PYTHON")
    return Path(env) if env else Path(sys.prefix).parent / ".spu-venv" / "bin" / "python"


def require_spu(python: Path) -> None:
    """Raise :class:`SpuUnavailable` (saying how to fix it) if ``python`` (SPU's venv) is missing."""
    if not python.exists():
        raise SpuUnavailable(
            f"SecretFlow SPU's environment is missing ({python} does not exist): run 'make spu-env' "
            "(it creates .spu-venv from envs/spu/requirements.txt) or set CONFIDE_SPU_PYTHON"
        )


# -- IDs ------------------------------------------------------------------------------------------------
def as_arrow(ids: Iterable[str] | pa.Array | pa.ChunkedArray) -> pa.Array:
    """The IDs as one Arrow string array, nulls dropped; Python IDs are checked to be ``str``."""
    if isinstance(ids, pa.ChunkedArray):
        arr = ids.combine_chunks()
    elif isinstance(ids, pa.Array):
        arr = ids
    else:
        items = list(ids)
        for pos, s in enumerate(items):
            if not isinstance(s, str):
                raise TypeError(f"PSI ID at position {pos} is {type(s).__name__}, not str")
        try:
            arr = pa.array(items, type=pa.string())
        except (UnicodeEncodeError, pa.ArrowException) as exc:
            raise ValueError(f"PSI IDs are not valid Unicode: {exc}") from None
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        raise TypeError(f"PSI IDs must be strings, not {arr.type}")
    return pc.drop_null(arr)


def nfc(arr: pa.Array) -> pa.Array:
    """NFC of each ID (a no-op, skipped, when every ID is ASCII)."""
    return arr if pc.all(pc.string_is_ascii(arr)).as_py() is not False else pc.utf8_normalize(arr, "NFC")


def canonical_array(ids: Iterable[str] | pa.Array | pa.ChunkedArray) -> pa.Array:
    """NFC-normalized, de-duplicated IDs as an Arrow string array (order not kept; nulls dropped)."""
    return pc.unique(nfc(as_arrow(ids)))


def encode_ids(arr: pa.Array) -> pa.Array:
    """The CSV form: an ID with a control character or a leading ``~`` becomes ``~`` + hex(UTF-8)."""
    unsafe = pc.match_substring_regex(arr, _UNSAFE)
    if not pc.any(unsafe).as_py():
        return arr
    flags = unsafe.to_pylist()
    return pa.array(
        ["~" + s.encode().hex() if f else s for s, f in zip(arr.to_pylist(), flags, strict=True)],
        type=arr.type,
    )


def decode_sorted(arr: pa.Array) -> list[str]:
    """Inverse of :func:`encode_ids`, as Python strings in code-point order (Arrow sorts when it can)."""
    if pc.any(pc.starts_with(arr, "~")).as_py():
        return sorted(bytes.fromhex(s[1:]).decode() if s.startswith("~") else s for s in arr.to_pylist())
    out: list[str] = arr.take(pc.array_sort_indices(arr)).to_pylist()
    return out


def write_ids_csv(arr: pa.Array, path: Path, canonical: bool) -> None:
    """The IDs as SPU's input CSV, written a chunk at a time (normalized here unless ``canonical``)."""
    schema = pa.schema([("id", arr.type)])
    with pacsv.CSVWriter(path, schema, write_options=pacsv.WriteOptions(quoting_style="needed")) as out:
        for off in range(0, len(arr), CSV_CHUNK):
            chunk = arr.slice(off, CSV_CHUNK)
            out.write_table(pa.table({"id": encode_ids(chunk if canonical else nfc(chunk))}, schema=schema))


def read_ids_csv(path: Path, unique: bool) -> list[str]:
    """The IDs of an SPU output CSV, decoded and sorted (de-duplicated unless the input was unique)."""
    table = pacsv.read_csv(
        path,
        convert_options=pacsv.ConvertOptions(
            column_types={"id": pa.large_string()},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    ids = table.column("id").combine_chunks()
    return decode_sorted(ids if unique else pc.unique(ids))


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as s:
        port: int = s.getsockname()[1]
        return port


# -- workers ------------------------------------------------------------------------------------------
class SpuWorker:
    """One worker process with SPU imported, waiting for its job; its work folder is private (0700)."""

    def __init__(self, python: Path, tmp_root: Path | None = None) -> None:
        require_spu(python)
        self.dir = Path(tempfile.mkdtemp(prefix="confide-spu-", dir=tmp_root))
        self._log = open(self.dir / "spu.log", "wb")  # noqa: SIM115 - closed in close()
        # LIBC_FATAL_STDERR_: glibc's own fatal messages (heap corruption, a failed assertion) go to
        # the controlling terminal otherwise, and a worker has none: its log would end with no reason
        env = {**os.environ, "TMPDIR": str(self.dir), "PYTHONNOUSERSITE": "1", "LIBC_FATAL_STDERR_": "1"}
        env.pop("PYTHONPATH", None)
        self.proc = subprocess.Popen(
            [str(python), "-I", str(WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=self.dir,
            env=env,
            text=True,
        )
        self._ready: dict[str, Any] | None = None

    def _line(self, timeout: float | None = None) -> dict[str, Any]:
        out: IO[str] | None = self.proc.stdout
        assert out is not None
        line = out.readline()
        if not line:
            self.proc.wait(5)
            raise PsiError(f"the SPU worker exited ({self.proc.returncode}): {self.log_tail()}")
        obj: dict[str, Any] = json.loads(line)
        return obj

    def wait_ready(self) -> dict[str, Any]:
        if self._ready is None:
            timer = threading.Timer(READY_WAIT_S, self.kill)
            timer.start()
            try:
                msg = self._line()
            finally:
                timer.cancel()
            if "error" in msg:
                raise SpuUnavailable(f"{msg['error']} (re-run 'make spu-env')")
            self._ready = msg
        return self._ready

    def _send(self, obj: dict[str, Any]) -> None:
        stdin = self.proc.stdin
        assert stdin is not None
        try:
            stdin.write(json.dumps(obj) + "\n")
            stdin.flush()
        except OSError:
            raise PsiError(f"the SPU worker is gone: {self.log_tail()}") from None

    def link(self, link: dict[str, Any]) -> int | None:
        """Start connecting SPU's link (it goes on while the caller prepares the input). With
        ``parties[rank] == "auto"`` returns the port the worker's link server takes."""
        self.wait_ready()
        self._send(link)
        if link["parties"][link["rank"]] != "auto":
            return None
        msg = self._line()
        if "error" in msg:
            raise PsiError(f"SPU failed: {msg['error']}")
        port: int = msg["port"]
        return port

    def run(
        self,
        job: dict[str, Any],
        progress: Progress | None = None,
        on_port: Callable[[int], None] | None = None,
    ) -> dict[str, Any]:
        """Give the run (after :meth:`link`); relay progress (and a link port taken again, to
        ``on_port``); return SPU's counts or raise PsiError."""
        self._send(job)
        while True:
            msg = self._line()
            if "linked" in msg:
                continue
            if "port" in msg:
                if on_port is not None:
                    on_port(int(msg["port"]))
                continue
            if "progress" in msg:
                if progress is not None:
                    progress(int(msg["progress"]), 100)
                continue
            if "error" in msg:
                raise PsiError(f"SPU failed: {msg['error']}")
            result: dict[str, Any] = msg["result"]
            return result

    def log_tail(self, lines: int = 5, chars: int = 400) -> str:
        """The end of the worker's log: its last ``lines`` lines, of which the last ``chars``
        characters (the reason a worker died is at the very end; an abort's reason crosses the tunnel
        capped at 500 characters, and SPU's long config lines would push it out)."""
        with contextlib.suppress(OSError):
            self._log.flush()
            text = (self.dir / "spu.log").read_text(errors="replace").strip().splitlines()
            tail = " | ".join(text[-lines:])
            return ("…" + tail[-chars:] if len(tail) > chars else tail) or "no output"
        return "no output"

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()

    def close(self) -> None:
        self.kill()
        with contextlib.suppress(Exception):
            self.proc.wait(10)
        self._log.close()
        self._remove_traces()
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(Exception):
                if stream is not None:
                    stream.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _remove_traces(self) -> None:
        """SPU writes a timing trace to a fixed ``/tmp/psi_<id>.trace`` whatever TMPDIR says; the log
        names it: remove it with the rest of the run's files."""
        with contextlib.suppress(OSError):
            for match in _TRACE.finditer((self.dir / "spu.log").read_text(errors="replace")):
                with contextlib.suppress(OSError):
                    Path(match.group(1)).unlink()


class SpuWorkers:
    """Keeps ``spares`` workers started (SPU imported) so a run does not wait for the import."""

    def __init__(self, python: Path | None = None, spares: int = 1, tmp_root: Path | None = None) -> None:
        self.python, self.spares, self.tmp_root = python or spu_python(), spares, tmp_root
        self._lock = threading.Lock()
        self._ready: list[SpuWorker] = []

    def check(self) -> None:
        """Raise :class:`SpuUnavailable` (saying how to fix it) if SPU's venv is not on this machine."""
        require_spu(self.python)

    def warm(self) -> None:
        """Start spares up to ``spares`` and wait until each has SPU imported."""
        with self._lock:
            while len(self._ready) < self.spares:
                self._ready.append(SpuWorker(self.python, self.tmp_root))
            ready = list(self._ready)
        for w in ready:
            w.wait_ready()

    def take(self) -> SpuWorker:
        with self._lock:
            worker = self._ready.pop(0) if self._ready else SpuWorker(self.python, self.tmp_root)
        threading.Thread(target=self._refill, daemon=True).start()
        return worker

    def _refill(self) -> None:
        with contextlib.suppress(PsiError, OSError), self._lock:
            while len(self._ready) < self.spares:
                self._ready.append(SpuWorker(self.python, self.tmp_root))

    def close(self) -> None:
        with self._lock:
            ready, self._ready = self._ready, []
        for w in ready:
            w.close()


# -- the engine ---------------------------------------------------------------------------------------
class SpuPsi:
    """One party of an SPU PSI (protocol ``RR22``, ``KKRT`` or ``ECDH``) over a Confide transport."""

    def __init__(
        self, engine: str = "spu-rr22", workers: SpuWorkers | None = None, dedup_max: int = DEDUP_MAX
    ):
        if engine not in SPU_PROTOCOLS:
            raise ValueError(f"unknown SPU engine {engine!r}; one of {sorted(SPU_PROTOCOLS)}")
        self.name, self.protocol = engine, SPU_PROTOCOLS[engine]
        self.workers = workers or SpuWorkers()
        self.dedup_max = dedup_max
        self.last_tunnel_bytes = (0, 0)

    def _recv(self, transport: Transport, timeout: float, what: str) -> dict[str, Any]:
        """One ``H`` (hello) or ``N`` (count) frame; the peer's ``A`` (abort) raises PsiPeerAborted."""
        try:
            frame = transport.recv(timeout)
        except TimeoutError:
            raise PsiProtocolError(f"the peer sent no {what} within {timeout:.0f} s") from None
        except EOFError:
            raise PsiProtocolError(f"the peer closed the link before its {what}") from None
        if frame[:1] == b"A":
            raise PsiPeerAborted(f"the peer aborted: {frame[1:501].decode(errors='replace')}")
        try:
            obj = json.loads(frame[1:]) if frame[:1] in (b"H", b"N") and len(frame) < 4096 else None
        except ValueError:
            obj = None
        if not isinstance(obj, dict):
            raise PsiProtocolError(f"malformed {what} from the peer")
        return obj

    def _hello(self, transport: Transport, config: PsiConfig, empty: bool) -> bool:
        """Exchange hellos; True if the peer's set is empty. A mismatch aborts both sides."""
        mine = {"v": 1, "engine": self.name, "session": config.session, "role": config.role}
        mine |= {"output": config.output, "empty": empty}
        transport.send(b"H" + json.dumps(mine).encode())
        peer = self._recv(transport, config.idle_timeout, "hello")
        reason = None
        for key in ("engine", "session", "output"):
            if peer.get(key) != mine[key]:
                reason = f"the peer's {key} ({str(peer.get(key))[:80]!r}) differs from ours ({mine[key]!r})"
        if peer.get("role") == config.role:
            reason = f"both parties claim the {config.role} role"
        if not isinstance(peer.get("empty"), bool):
            reason = "malformed hello from the peer"
        if reason is not None:
            with contextlib.suppress(Exception):
                transport.send(b"A" + json.dumps({"reason": reason}).encode())
            raise PsiProtocolError(reason)
        return bool(peer["empty"])

    @staticmethod
    def _peer_count(info: dict[str, Any]) -> int:
        count = info.get("count")
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise PsiProtocolError("malformed count from the peer")
        return count

    def run(
        self,
        ids: Iterable[str] | pa.Array | pa.ChunkedArray,
        transport: Transport,
        config: PsiConfig,
        progress: Progress | None = None,
    ) -> PsiResult:
        arr = as_arrow(ids)
        peer_empty = self._hello(transport, config, len(arr) == 0)
        if len(arr) == 0 or peer_empty:  # nothing to intersect: only the counts are exchanged
            own = pc.count_distinct(nfc(arr)).as_py()
            transport.send(b"N" + json.dumps({"count": own}).encode())
            peer = self._peer_count(self._recv(transport, config.idle_timeout, "count"))
            return PsiResult([] if config.gets_output else None, own, peer)
        return self._run_spu(arr, transport, config, progress)

    def _steps(
        self,
        worker: SpuWorker,
        tunnel: Tunnel,
        arr: pa.Array,
        rank: int,
        config: PsiConfig,
        progress: Progress | None,
    ) -> tuple[int | None, dict[str, Any]]:
        """Link (through the tunnel), write the input while it connects, run; (own count, SPU report)."""
        parties = ["auto", f"127.0.0.1:{tunnel.listen_port}"]
        port = worker.link(
            {
                "rank": rank,
                "parties": parties if rank == 0 else parties[::-1],
                "link_id": hashlib.sha256(config.session.encode()).hexdigest()[:32],
                "recv_timeout_ms": int(config.idle_timeout * 1000),
                "window": LINK_WINDOW,
            }
        )
        assert port is not None
        tunnel.server_port = port  # the worker's link server, where the peer's connections go
        tunnel.start()
        unique = len(arr) <= self.dedup_max  # else SPU de-duplicates in its on-disk buckets
        if unique:
            arr = pc.unique(nfc(arr))
        src = worker.dir / "ids.csv"
        write_ids_csv(arr, src, canonical=unique)
        own = len(arr) if unique else None
        del arr
        job = {
            "protocol": self.protocol,
            "receiver_rank": 0,
            "broadcast": config.output == "both",
            "keys_unique": unique,
            "input": str(src),
            "output": str(worker.dir / "out.csv"),
        }
        report = worker.run(job, progress, tunnel.set_server_port) | {"keys_unique": unique}
        return own, report

    def _run_spu(
        self, arr: pa.Array, transport: Transport, config: PsiConfig, progress: Progress | None
    ) -> PsiResult:
        worker = self.workers.take()
        rank = 0 if config.role == "receiver" else 1
        tunnel = Tunnel(
            transport,
            server_port=0,  # the worker's, once it says which (worker.link)
            odd_ids=rank == 1,
            idle_timeout=config.idle_timeout,
            on_error=lambda _exc: worker.kill(),
        )
        try:
            try:
                own, report = self._steps(worker, tunnel, arr, rank, config, progress)
            except Exception as exc:
                if tunnel.error is not None:  # the peer or the link broke first: that is the reason
                    raise tunnel.error from None
                tunnel.send_abort(str(exc) if isinstance(exc, PsiError) else f"{type(exc).__name__}")
                raise
            own = own if own is not None else int(report["original_unique_count"])
            tunnel.send_end({"count": own})
            peer = self._peer_count(tunnel.wait_end(config.idle_timeout))
            dst = worker.dir / "out.csv"
            inter = (
                read_ids_csv(dst, own is not None and report["keys_unique"]) if config.gets_output else None
            )
            if progress is not None:
                progress(100, 100)
            self.last_tunnel_bytes = (tunnel.bytes_out, tunnel.bytes_in)
            return PsiResult(inter, own, peer)
        finally:
            tunnel.stop()
            worker.close()
