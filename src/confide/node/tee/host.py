"""A node as enclave host: sessions for the task's requester, inputs fetched from owners, sealed outputs.

The requester drives a run with its own key (the ledger records who asked):

1. ``open_session(task)``: the host launches and quotes an enclave for the task's code on the ledger,
   bound to this node's latest block; the requester puts the attestation into its ``run.start`` tx.
2. ``execute(session, run)``: once the run is on this node's ledger (same quote), the host asks each
   input's owner node for its input (``owner.open_transfer`` there), relays the frames into the
   enclave, runs the task and keeps the sealed output under ``tee_dir/sealed``; it returns the
   enclave's signed statement for the requester's ``run.finish``.
3. ``release(run)``: only when this node's ledger shows the release ``released`` (every owner
   approved), a fresh enclave of the same measurement unseals the output and encrypts it to the
   X25519 key the task names (``params.recipient``). The host never sees the output in the clear.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ...crypto.canonical import canonical_bytes
from ...crypto.files import atomic_write
from ...crypto.httpsig import sign_request
from ...engines.tee.host import EnclaveError, EnclaveHost, RunResult
from ...engines.tee.platform import HostPlatform, load_platform
from ..context import NodeContext
from ..peers import error_text, peer_client
from .verify import TeeRefused

__all__ = ["EnclaveSessions", "alias_of"]

SESSION_TTL_S = 30 * 60
log = logging.getLogger("confide.node.tee")
_ENCLAVE_CODES = {
    "below_min_group": "an output row aggregates fewer input rows than an input's minimum group size",
    "channel": "an input's frames were altered, reordered, replayed or cut short; nothing was computed",
    "task_failed": "the task failed inside the enclave (its error text stays inside)",
    "seal": "the sealed output does not open under this measurement",
}


def alias_of(dataset: str) -> str:
    """The table name a dataset has inside the enclave: its last id segment, ``-`` -> ``_``."""
    alias = dataset.rsplit("/", 1)[-1].replace("-", "_")
    return alias if alias[0].isalpha() else f"t_{alias}"


@dataclass
class _Session:
    task_id: str
    requester: str
    host: EnclaveHost
    quote_digest: str
    opened: float = field(default_factory=time.monotonic)


class _FrameReader:
    """``u32 length || frame`` records out of an HTTP byte stream.

    With ``CONFIDE_TEE_WIRE_LOG`` set (tests and audits), every byte received from owners is also
    appended to that file: the canary test searches it for plaintext.
    """

    def __init__(self, chunks: Iterator[bytes], progress: dict[str, Any] | None = None) -> None:
        self._chunks, self._buf = chunks, bytearray()
        self._log = os.environ.get("CONFIDE_TEE_WIRE_LOG")
        self._progress = progress if progress is not None else {}

    def _fill(self, n: int) -> bool:
        while len(self._buf) < n:
            chunk = next(self._chunks, None)
            if chunk is None:
                return False
            if self._log:
                with open(self._log, "ab") as fh:
                    fh.write(chunk)
            self._buf += chunk
        return True

    def __iter__(self) -> Iterator[bytes]:
        while self._fill(4):
            size = int.from_bytes(self._buf[:4], "big")
            if not self._fill(4 + size):
                return  # cut short: the enclave sees no FINAL frame and aborts the input
            frame = bytes(self._buf[4 : 4 + size])
            del self._buf[: 4 + size]
            self._progress["frames"] = self._progress.get("frames", 0) + 1
            self._progress["bytes"] = self._progress.get("bytes", 0) + size
            yield frame


class EnclaveSessions:
    """The enclave sessions of one host node (thread-safe)."""

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        self._lock = threading.Lock()
        self._sessions: dict[str, _Session] = {}
        self._progress: dict[str, dict[str, Any]] = {}  # session id -> what the requester may watch
        self._running: dict[str, _Session] = {}  # run id -> its session while it executes
        self._platform: HostPlatform | None = None
        self._http = peer_client(ctx, httpx.Timeout(30.0, read=600.0))

    @property
    def platform(self) -> HostPlatform:
        cfg = self.ctx.config
        if cfg.tee_dir is None or cfg.runtime_build is None:
            raise TeeRefused("NOT_A_HOST", f"node {cfg.org!r} is not configured as an enclave host", 409)
        if self._platform is None:
            try:
                self._platform = load_platform(cfg.tee_dir, cfg.runtime_build)
            except (OSError, ValueError, KeyError) as exc:
                raise TeeRefused("HOST_MISCONFIGURED", f"enclave-host files unusable: {exc}", 500) from None
        return self._platform

    @property
    def sealed_dir(self) -> Path:
        assert self.ctx.config.tee_dir is not None
        return self.ctx.config.tee_dir / "sealed"

    def _task(self, task_id: str, requester: str) -> dict[str, Any]:
        task = self.ctx.query_or_none(f"task/{task_id}")
        if task is None:
            raise TeeRefused("UNKNOWN_TASK", f"task {task_id[:16]} is not on this node's ledger (yet)", 404)
        if task["engine"] != "tee":
            raise TeeRefused("NOT_TEE", f"task {task_id[:16]} uses engine {task['engine']!r}, not tee", 409)
        if task["requester"] != requester:
            raise TeeRefused("NOT_REQUESTER", "only the task's requester drives its runs")
        return dict(task)

    def _new_host(self) -> EnclaveHost:
        p = self.platform
        return EnclaveHost(p.attestation_key, p.sealing_root, p.build)

    def open_session(self, task_id: str, requester: str) -> dict[str, Any]:
        """Launch and quote an enclave for the task; return the session id and the run's attestation."""
        task = self._task(task_id, requester)
        if task["status"] != "active":
            raise TeeRefused("TASK_NOT_ACTIVE", f"task is {task['status']}", 409)
        self._expire()
        host = self._new_host()
        block_hash = self.ctx.replica.head_hash
        try:
            quote = host.start(task_id, task["code"], block_hash)
        except (EnclaveError, ValueError) as exc:
            host.close()
            raise TeeRefused("ENCLAVE_FAILED", f"the enclave did not start: {exc}", 500) from None
        info = host.info
        assert info is not None
        sid = secrets.token_hex(16)
        with self._lock:
            self._sessions[sid] = _Session(task_id, requester, host, hashlib.sha256(quote).hexdigest())
        attestation = {"tee_type": info.tee_type, "quote": quote.hex(), "block_hash": block_hash}
        attestation |= {
            "channel_pub": info.channel_public_key.hex(),
            "result_pub": info.result_public_key.hex(),
        }
        attestation["host_org"] = self.ctx.config.org
        return {"session": sid, "attestation": attestation, "network_isolated": info.network_isolated}

    def _expire(self) -> None:
        with self._lock:
            old = [k for k, s in self._sessions.items() if time.monotonic() - s.opened > SESSION_TTL_S]
            stale = [self._sessions.pop(k) for k in old]
        for s in stale:
            s.host.close()

    def execute(self, session_id: str, run_id: str, requester: str) -> dict[str, Any]:
        """Fetch every input into the session's enclave, run, seal; return the signed statement."""
        with self._lock:
            session = self._sessions.pop(session_id, None)
        if session is None or session.requester != requester:
            raise TeeRefused("UNKNOWN_SESSION", "no such enclave session for you; open a new one", 404)
        progress: dict[str, Any] = {"requester": requester, "state": "fetching", "inputs": {}}
        with self._lock:
            self._progress[session_id] = progress
            self._running[run_id] = session
        try:
            result = self._execute(session, run_id, progress)
            progress["state"] = "sealed"
            return result
        except TeeRefused as exc:
            progress["state"] = f"failed: {exc.code}"
            raise
        finally:
            with self._lock:
                self._running.pop(run_id, None)
            session.host.close()

    def reap_cancelled(self) -> int:
        """Runs cancelled (or failed) on this node's ledger view: kill their enclave if it is still
        fetching or running (nothing gets sealed), and erase a sealed output already kept for them.
        Returns how many were stopped or erased."""
        with self._lock:
            running = list(self._running.items())
        done = 0
        for run_id, session in running:
            if self.ctx.stopped_run(run_id):
                session.host.abort()
                done += 1
        if self.ctx.config.tee_dir is None or not self.sealed_dir.is_dir():
            return done
        for path in self.sealed_dir.glob("*.sealed"):
            if self.ctx.stopped_run(path.stem):
                for f in (path, path.with_suffix(".json")):
                    f.unlink(missing_ok=True)
                log.info("run %s ended on the ledger: its sealed output erased", path.stem[:16])
                done += 1
        return done

    def _refused(self, run_id: str, exc: EnclaveError) -> TeeRefused:
        if self.ctx.stopped_run(run_id):
            return TeeRefused("RUN_ENDED", "the run was cancelled on the ledger; nothing was kept", 409)
        return _enclave_refused(exc)

    def discard(self, session_id: str, requester: str) -> None:
        """End a session that will not run (e.g. its run.start was refused): the enclave exits now."""
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None or session.requester != requester:
                raise TeeRefused("UNKNOWN_SESSION", "no such enclave session for you", 404)
            del self._sessions[session_id]
        session.host.close()

    def progress(self, session_id: str, requester: str) -> dict[str, Any]:
        """Where a running session is: per input, frames and bytes relayed so far; then the run."""
        with self._lock:
            p = self._progress.get(session_id)
            if len(self._progress) > 256:  # keep the latest sessions' progress only
                for k in list(self._progress)[:-256]:
                    del self._progress[k]
        if p is None or p["requester"] != requester:
            raise TeeRefused("UNKNOWN_SESSION", "no such enclave session for you", 404)
        return {"state": p["state"], "inputs": {k: dict(v) for k, v in p["inputs"].items()}}

    def _execute(self, session: _Session, run_id: str, progress: dict[str, Any]) -> dict[str, Any]:
        run = self.ctx.query_or_none(f"run/{run_id}")
        if run is None or run["task"] != session.task_id:
            raise TeeRefused(
                "UNKNOWN_RUN", f"run {run_id[:16]} of this task is not on this node's ledger", 404
            )
        if run["status"] != "running":
            raise TeeRefused("RUN_ENDED", f"the run is {run['status']} on the ledger", 409)
        if run.get("attestation_digest") != session.quote_digest:
            raise TeeRefused("WRONG_ENCLAVE", "the run names another enclave than this session's")
        task = self._task(session.task_id, session.requester)
        for inp in task["inputs"]:
            progress["inputs"][inp["dataset"]] = counters = {"frames": 0, "bytes": 0, "done": False}
            self._fetch(session.host, run_id, inp["dataset"], counters)
            counters["done"] = True
        progress["state"] = "running"
        need = max(
            self.ctx.query(f"dataset/{i['dataset']}").get("min_group_size") or 0 for i in task["inputs"]
        )
        try:
            result = session.host.run(min_group_size=need)
        except EnclaveError as exc:
            raise self._refused(run_id, exc) from None
        if self.ctx.stopped_run(run_id):  # cancelled while the enclave ran: keep nothing
            raise self._refused(run_id, EnclaveError("exited"))
        self._keep(run_id, result)
        log.info("run %s: sealed output %s", run_id[:16], result.output_digest.hex()[:16])
        return {"statement": result.statement, "signature": result.signature.hex(), "summary": result.summary}

    def _fetch(self, host: EnclaveHost, run_id: str, dataset: str, counters: dict[str, Any]) -> None:
        org = dataset.split("/", 1)[0]
        base = self.ctx.config.url if org == self.ctx.config.org else self.ctx.config.peers.get(org)
        if base is None:
            raise TeeRefused("NO_PEER", f"no link to org {org!r} configured in node.json peers", 502)
        path, body = (
            "/v1/tee/inputs",
            canonical_bytes({"dataset": dataset, "min_height": self.ctx.replica.height, "run": run_id}),
        )
        headers = sign_request(self.ctx.identity, "POST", path, "", body) | {
            "Content-Type": "application/json"
        }
        try:
            with self._http.stream("POST", base.rstrip("/") + path, content=body, headers=headers) as resp:
                if resp.status_code != 200:
                    resp.read()
                    raise TeeRefused(
                        "OWNER_REFUSED", f"{org}'s node refused {dataset}: {error_text(resp)}", 403
                    )
                sender = resp.headers.get("x-confide-sender-key", "")
                frames = _FrameReader(resp.iter_bytes(), counters)
                try:
                    host.feed(dataset, frames, alias=alias_of(dataset), sender_key_id=sender)
                except EnclaveError as exc:
                    raise self._refused(run_id, exc) from None
        except httpx.HTTPError as exc:
            raise TeeRefused("PEER_UNREACHABLE", f"{org}'s node at {base} failed: {exc}", 502) from None

    def _keep(self, run_id: str, result: RunResult) -> None:
        meta = {"statement": result.statement, "signature": result.signature.hex(), "summary": result.summary}
        atomic_write(self.sealed_dir / f"{run_id}.sealed", result.sealed)
        atomic_write(self.sealed_dir / f"{run_id}.json", json.dumps(meta).encode())

    def release(self, run_id: str, requester: str) -> bytes:
        """The output encrypted to the task's recipient key, once the ledger shows every approval."""
        run = self.ctx.query_or_none(f"run/{run_id}")
        if run is None:
            raise TeeRefused("UNKNOWN_RUN", f"run {run_id[:16]} is not on this node's ledger (yet)", 404)
        task = self._task(run["task"], requester)
        rel = self.ctx.query_or_none(f"release/{run_id}")
        if rel is None or rel["status"] != "released":
            status = "not requested" if rel is None else rel["status"]
            pending = sorted(set(rel["required"]) - set(rel["decisions"])) if rel else []
            wait = f"; waiting for {', '.join(pending)}" if pending else ""
            raise TeeRefused("NOT_RELEASED", f"the release is {status} on the ledger{wait}", 409)
        recipient = task["params"].get("recipient")
        if not isinstance(recipient, str):
            raise TeeRefused("NO_RECIPIENT", "the task names no recipient key (params.recipient)", 409)
        try:
            meta = json.loads((self.sealed_dir / f"{run_id}.json").read_text())
            sealed = (self.sealed_dir / f"{run_id}.sealed").read_bytes()
        except OSError:
            raise TeeRefused(
                "NO_OUTPUT", f"this node keeps no sealed output of run {run_id[:16]}", 404
            ) from None
        if meta["statement"]["output_digest"] != rel["output_digest"]:
            raise TeeRefused("WRONG_OUTPUT", "the sealed output is not the one the owners approved", 409)
        result = RunResult(meta["statement"], bytes.fromhex(meta["signature"]), meta["summary"], sealed)
        with self._new_host() as host:
            try:
                host.start(task["id"], task["code"], self.ctx.replica.head_hash)
                return host.release(bytes.fromhex(recipient), approved=True, result=result)
            except EnclaveError as exc:
                raise _enclave_refused(exc) from None

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for s in sessions:
            s.host.close()
        self._http.close()


def _enclave_refused(exc: EnclaveError) -> TeeRefused:
    reason = _ENCLAVE_CODES.get(exc.code, f"the enclave stopped ({exc.code})")
    return TeeRefused(f"ENCLAVE_{exc.code.upper()}", reason, 422)
