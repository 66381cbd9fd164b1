"""The enclave host: measures, launches, quotes and relays for one enclave process (runs OUTSIDE it).

A node configured as an enclave host runs one :class:`EnclaveHost` per task session. In the
``simulated`` backend it plays the parts hardware plays in SGX: it loads and measures the runtime
(the CPU), launches it as a separate process with ``python -I -m confide.engines.tee.enclave``,
inside a fresh network namespace where ``unshare`` allows (else as a plain process;
:attr:`EnclaveInfo.network_isolated` says which, checked against the interfaces the enclave sees),
and quotes the enclave's report with the simulated attestation key (the quoting enclave). It relays
the owners' channel frames and keeps the sealed output. What it sees: frame counts and sizes, input
and output digests, the output's row count and column names, ciphertexts, timing.

What is measured, and how owners recompute it (:func:`measure`), is in ``measurement.py``; what the
simulation does not protect against, in ``enclave.py``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import IO, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .attestation import TEE_TYPE, AttestationKey, make_quote, mrenclave
from .measurement import RuntimeBuild, locked_deps, measure
from .sealing import SealingRoot
from .wire import WireError, read_message, result_message, widen_pipe, write_message

__all__ = ["EnclaveError", "EnclaveHost", "EnclaveInfo", "RunResult", "RuntimeBuild", "measure"]


class EnclaveError(Exception):
    """The enclave refused or died; ``code`` is the word it answered (or ``exited``, ``protocol``)."""

    def __init__(self, code: str) -> None:
        super().__init__(f"enclave stopped: {code}")
        self.code = code


@dataclass(frozen=True, slots=True)
class EnclaveInfo:
    """What the host knows of a started enclave; every record says ``tee_type: simulated``."""

    task_id: str
    mrenclave: bytes
    mrsigner: bytes
    isv_prod_id: int
    isv_svn: int
    channel_public_key: bytes
    result_public_key: bytes
    quote_digest: bytes
    network_isolated: bool
    interfaces: tuple[str, ...]
    pid: int
    tee_type: str = TEE_TYPE


@dataclass(frozen=True, slots=True)
class RunResult:
    """The enclave's signed result statement, the output's summary, and the sealed output."""

    statement: dict[str, Any]
    signature: bytes
    summary: dict[str, Any]
    sealed: bytes

    @property
    def output_digest(self) -> bytes:
        return bytes.fromhex(self.statement["output_digest"])

    def verify(self, result_public_key: bytes) -> None:
        """Raise ``cryptography.exceptions.InvalidSignature`` unless the result key signed the statement."""
        key = Ed25519PublicKey.from_public_bytes(result_public_key)
        key.verify(self.signature, result_message(self.statement))


@functools.cache
def isolation_prefix() -> tuple[str, ...]:
    """``unshare`` arguments that give a child an empty network namespace here, or ``()``."""
    tool = shutil.which("unshare") or ""
    for flags in (("--net",), ("--net", "--map-root-user")) if tool else ():
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            if subprocess.run([tool, *flags, "true"], capture_output=True, timeout=10).returncode == 0:
                return (tool, *flags)
    return ()


def _hex(header: dict[str, Any], key: str, size: int) -> bytes:
    with contextlib.suppress(TypeError, ValueError):
        if len(raw := bytes.fromhex(header.get(key))) == size:  # type: ignore[arg-type]
            return raw
    raise EnclaveError("protocol")


def _hello(build: RuntimeBuild, root: SealingRoot, task: dict[str, str]) -> dict[str, Any]:
    """The hello message. In SGX the sealing root would come from the CPU, never from the host."""
    ident = {"mrsigner": build.mrsigner.hex(), "isv_prod_id": build.isv_prod_id, "isv_svn": build.isv_svn}
    runtime = {"runtime_digest": build.runtime_digest.hex(), "locked_deps": locked_deps()}
    return {"type": "hello", **task, **ident, **runtime, "sealing_root": root.secret.hex()}


class _Tap:
    """The enclave's stdin with an optional record of every byte written (tests only)."""

    def __init__(self, out: IO[bytes], log: bytearray | None) -> None:
        self.out, self.log = out, log

    def write(self, data: bytes) -> int:
        if self.log is not None:
            self.log += data
        return self.out.write(data)

    def flush(self) -> None:
        self.out.flush()


class EnclaveHost:
    """Host of one enclave session: :meth:`start`, then :meth:`feed` per input, :meth:`run`, :meth:`close`.

    ``transcript=True`` (tests only) records every byte written to and read from the enclave in
    :attr:`sent` and :attr:`received`; :attr:`stderr` always holds what the process wrote there.
    """

    def __init__(
        self,
        attestation_key: AttestationKey,
        sealing_root: SealingRoot,
        build: RuntimeBuild,
        *,
        isolate_network: bool = True,
        transcript: bool = False,
    ) -> None:
        build.check()
        self._key, self._root, self._build = attestation_key, sealing_root, build
        self._isolate = isolate_network
        self._proc: subprocess.Popen[bytes] | None = None
        self.info: EnclaveInfo | None = None
        self.result: RunResult | None = None
        self.returncode: int | None = None
        self.sent: bytearray | None = bytearray() if transcript else None
        self.received: bytearray | None = bytearray() if transcript else None
        self.stderr = b""

    def start(self, task_id: str, task_code: str, block_hash: str) -> bytes:
        """Launch the enclave for ``task_code``, have it report, quote it; return the quote bytes."""
        if self._proc is not None:
            raise RuntimeError("an EnclaveHost runs one enclave session; make a new one")
        build, task = self._build, {"task_id": task_id, "task_code": task_code, "block_hash": block_hash}
        hello = _hello(build, self._root, task)
        expected = mrenclave(build.runtime_digest, hello["locked_deps"], task_code)
        isolated = self._launch()
        ident: dict[str, Any] = {"mrenclave": expected, "mrsigner": build.mrsigner}
        ident |= {"isv_prod_id": build.isv_prod_id, "isv_svn": build.isv_svn}
        report, _ = self._call(hello, expect="report")
        if _hex(report, "mrenclave", 32) != expected:  # it would run other code than was loaded
            raise self._stop("measurement")
        quote = make_quote(self._key, **ident, report_data=_hex(report, "report_data", 64))
        ready, _ = self._call({"type": "quoted"}, quote, expect="ready")
        seen = tuple(str(name) for name in report.get("interfaces", ()))
        self.info = EnclaveInfo(
            task_id,
            **ident,
            channel_public_key=_hex(report, "channel_pub", 32),
            result_public_key=_hex(report, "result_pub", 32),
            quote_digest=_hex(ready, "quote_digest", 32),
            network_isolated=isolated and seen == ("lo",),
            interfaces=seen,
            pid=self._running().pid,
        )
        return quote

    def _launch(self) -> bool:
        prefix = isolation_prefix() if self._isolate else ()
        command = [*prefix, sys.executable, "-I", "-m", "confide.engines.tee.enclave"]
        pipe = subprocess.PIPE  # a minimal environment and cwd: nothing of the host's leaks in
        self._proc = subprocess.Popen(
            command, stdin=pipe, stdout=pipe, stderr=pipe, env={"PATH": os.defpath}, cwd="/"
        )
        assert self._proc.stdin is not None and self._proc.stdout is not None
        for stream in (self._proc.stdin, self._proc.stdout):
            widen_pipe(stream.fileno())
        return bool(prefix)

    def feed(self, dataset_id: str, frames: Iterable[bytes], *, alias: str, sender_key_id: str) -> bytes:
        """Relay one owner's channel frames as table ``alias``; return the enclave's input digest."""
        header = {"type": "input", "alias": alias, "dataset_id": dataset_id, "sender_key_id": sender_key_id}
        if self._send(header):
            for frame in frames:
                if not self._send({"type": "frame"}, frame):
                    break  # the enclave stopped reading: its answer says why
            else:
                self._send({"type": "end"})
        accepted, _ = self._reply("accepted")
        return _hex(accepted, "input_digest", 32)

    def run(self, *, min_group_size: int = 0) -> RunResult:
        """Run the task; the result statement is signed, the output sealed (the host cannot read it).

        ``min_group_size`` > 0: the enclave refuses (``below_min_group``) an output whose
        ``group_size`` column has a smaller value, or that has no such column.
        """
        reply, sealed = self._call({"type": "run", "min_group_size": min_group_size}, expect="result")
        signature = _hex(reply, "signature", 64)
        self.result = RunResult(reply["statement"], signature, reply["summary"], sealed)
        return self.result

    def release(self, requester_pub: bytes, approved: bool, *, result: RunResult | None = None) -> bytes:
        """The output encrypted to the requester (a ``wire`` release box), if ``approved``.

        ``approved`` is the host's word: ``confide.node.tee.host`` sets it only when the node's own
        ledger shows the release ``released``. ``result`` (default: this session's run) may come from
        an earlier session of the same measurement: the enclave unseals it.
        """
        result = result if result is not None else self.result
        if result is None:
            raise RuntimeError("nothing to release: run() first or pass result=")
        header = {"type": "release", "approved": approved, "requester_pub": requester_pub.hex()}
        header["output_digest"] = result.output_digest.hex()
        _, box = self._call(header, result.sealed, expect="released")
        return box

    def abort(self) -> None:
        """Kill the enclave now (from another thread: its run was cancelled). The thread feeding or
        running it gets ``EnclaveError("exited")``; nothing was sealed."""
        proc = self._proc
        if proc is not None and self.returncode is None:
            with contextlib.suppress(OSError):
                proc.kill()

    def close(self) -> int | None:
        """End the session (the enclave exits when its input closes); return its exit status."""
        proc = self._proc
        if proc is None or self.returncode is not None:
            return self.returncode
        with contextlib.suppress(OSError):
            assert proc.stdin is not None
            proc.stdin.close()
        try:
            self.returncode = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            self.returncode = proc.wait()
        assert proc.stdout is not None and proc.stderr is not None
        self.stderr = proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
        return self.returncode

    def __enter__(self) -> EnclaveHost:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def _running(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self.returncode is not None:
            raise RuntimeError("the enclave is not running")
        return self._proc

    def _send(self, header: dict[str, Any], body: bytes = b"") -> bool:
        stdin = self._running().stdin
        assert stdin is not None
        try:
            write_message(_Tap(stdin, self.sent), header, body)
        except (BrokenPipeError, ConnectionResetError):
            return False
        return True

    def _read(self, size: int) -> bytes:
        stdout = self._running().stdout
        assert stdout is not None
        data = stdout.read(size)
        if self.received is not None:
            self.received += data
        return data

    def _call(self, h: dict[str, Any], body: bytes = b"", *, expect: str) -> tuple[dict[str, Any], bytes]:
        self._send(h, body)
        return self._reply(expect)

    def _reply(self, expect: str) -> tuple[dict[str, Any], bytes]:
        try:
            message = read_message(self._read)
        except WireError:
            message = None
        if message is None:
            raise self._stop("exited")
        header, body = message
        if header["type"] != expect:
            code = header.get("code") if header["type"] == "error" else "protocol"
            raise self._stop(code if isinstance(code, str) else "protocol")
        return header, body

    def _stop(self, code: str) -> EnclaveError:
        self.close()
        return EnclaveError(code)
