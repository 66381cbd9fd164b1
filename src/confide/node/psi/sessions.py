"""PSI runs between two org nodes: the receiver (the requester's org) and the sender (the partner).

The task's requester drives a run through its own node (``POST /v1/psi/runs``); that node is the
*receiver*. Each node checks, on its own ledger view and before it reads a single ID:

1. the run is ``running``, started at most :data:`MAX_RUN_AGE_MS` ago, and its task is a psi task
   naming a known engine by its code digest (:mod:`confide.engines.psi.registry`: the built-in
   ``ecdh`` or SPU's ``spu-rr22``/``spu-kkrt``/``spu-ecdh``; a node without SPU's venv refuses
   ``ENGINE_UNAVAILABLE`` before it reads anything) and exactly two inputs of one column each;
2. receiver: the caller is the task's requester and one input is this org's dataset; sender: the
   caller is a node of the requester's org and the dataset asked for is this org's input of the task;
3. its own grant is live for the task's requester, engine ``psi`` and the ID column
   (``enforcement.authorize_use``, logged either way);
4. this (run, dataset) never ran before (claimed in the node's database first).

Then only the ID column of the dataset version the run names is read through the connector and the
task's engine runs over :class:`.transport.HttpTransport` (SPU's link is carried inside it by
:class:`~confide.engines.psi.tunnel.Tunnel`: no other port is opened between the nodes).
The receiver keeps the intersection (its own IDs) in its database for a later step and answers the
requester with its size and ``output_digest`` = SHA-256 of the sorted canonical IDs joined by "\\n".
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ...crypto.canonical import canonical_bytes
from ...crypto.httpsig import sign_request
from ...engines.psi.ecdh import EcdhPsi, new_pool
from ...engines.psi.interface import (
    ECDH_PSI_CODE,
    ECDH_PSI_CODE_DIGEST,
    Output,
    PsiConfig,
    PsiEngine,
    PsiError,
    PsiPeerAborted,
    PsiResult,
    Role,
)
from ...engines.psi.registry import PSI_ENGINES, engine_of
from ...engines.psi.spu import SpuPsi, SpuUnavailable, SpuWorkers
from ..context import NodeContext
from ..enforcement import authorize_task_input
from ..peers import error_text, peer_client
from ..refusal import Refused
from ..sources import read_version
from .transport import MAX_MESSAGE, HttpTransport, Inbox, PeerRefused

__all__ = [
    "MAX_RUN_AGE_MS",
    "PSI_CODE",
    "PSI_CODE_DIGEST",
    "PsiRefused",
    "PsiSessions",
    "output_digest",
]

PSI_CODE, PSI_CODE_DIGEST = ECDH_PSI_CODE, ECDH_PSI_CODE_DIGEST
MAX_RUN_AGE_MS = 30 * 60 * 1000
SESSION_TTL_S = 30 * 60
IDLE_TIMEOUT_S = 60.0
log = logging.getLogger("confide.node.psi")


class PsiRefused(Refused):
    """A PSI step refused or failed; ``code`` for machines, the message for people (never data)."""


def output_digest(ids: list[str]) -> str:
    """SHA-256 (hex) of the sorted canonical IDs joined by "\\n" (what ``run.finish`` names)."""
    return hashlib.sha256("\n".join(sorted(ids)).encode("utf-8")).hexdigest()


@dataclass
class _Session:
    sid: str
    run: str
    role: Role
    peer_org: str
    inbox: Inbox = field(default_factory=Inbox)
    opened: float = field(default_factory=time.monotonic)
    state: str = "starting"
    done: int = 0
    total: int = 0

    def progress(self, done: int, total: int) -> None:
        """The engine's progress callback (any thread): what ``GET /v1/psi/runs/{run}`` shows."""
        self.done, self.total = done, total

    def view(self) -> dict[str, Any]:
        return {"role": self.role, "state": self.state, "done": self.done, "total": self.total}


class PsiSessions:
    """The PSI sessions of one node (thread-safe)."""

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        self._lock = threading.Lock()
        self._sessions: dict[str, _Session] = {}
        self._pool: ProcessPoolExecutor | None = None
        self._spu: SpuWorkers | None = None
        self._http = peer_client(ctx, httpx.Timeout(30.0))

    # -- shared checks ---------------------------------------------------------------------------
    def _run_and_task(self, run_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        run = self.ctx.query_or_none(f"run/{run_id}")
        if run is None:
            raise PsiRefused("UNKNOWN_RUN", f"run {run_id[:16]} is not on this node's ledger (yet)", 404)
        task = dict(self.ctx.query(f"task/{run['task']}"))
        if task["engine"] != "psi":
            raise PsiRefused(
                "NOT_PSI", f"task {task['id'][:16]} uses engine {task['engine']!r}, not psi", 409
            )
        if engine_of(task["code_digest"]) is None:
            raise PsiRefused(
                "UNKNOWN_CODE", f"the task's code digest names none of {', '.join(PSI_ENGINES.values())}", 409
            )
        if len(task["inputs"]) != 2 or any(len(i["columns"]) != 1 for i in task["inputs"]):
            raise PsiRefused("BAD_TASK", "a psi task has exactly two inputs of one ID column each", 409)
        if task["params"].get("output", "receiver") not in ("receiver", "both"):
            raise PsiRefused("BAD_TASK", "params.output is 'receiver' or 'both'", 409)
        if run["status"] != "running":
            raise PsiRefused("RUN_NOT_RUNNING", f"run {run_id[:16]} is {run['status']}", 409)
        if self.ctx.now() - int(run["started_at"]) > MAX_RUN_AGE_MS:
            raise PsiRefused("RUN_TOO_OLD", "the run started too long ago; start a new run", 409)
        return dict(run), task

    def _org_of(self, dataset: str) -> str:
        ds = self.ctx.query_or_none(f"dataset/{dataset}")
        if ds is None:
            raise PsiRefused("UNKNOWN_DATASET", f"dataset {dataset} is not on the ledger", 404)
        return str(ds["org"])

    def _read_ids(self, dataset: str, digest: str, column: str) -> list[str]:
        """The ID column of the dataset version the run names, read through the connector (only it)."""
        batches = read_version(self.ctx, dataset, digest, [column])
        return [str(v) for b in batches for v in b.column(0).to_pylist() if v is not None]

    def _peer_url(self, org: str) -> str:
        url = self.ctx.config.peers.get(org)
        if url is None:
            raise PsiRefused("NO_PEER", f"no link to org {org!r} configured in node.json peers", 502)
        return url

    def _engine(self, task: dict[str, Any]) -> PsiEngine:
        """The engine the task names (checked available before any claim or ID read)."""
        name = engine_of(task["code_digest"])
        with self._lock:
            if name == "ecdh":
                if self._pool is None:
                    self._pool = new_pool()
                return EcdhPsi(executor=self._pool)
            if self._spu is None:
                self._spu = SpuWorkers(spares=1, tmp_root=self._spu_dir())
            try:
                self._spu.check()
            except SpuUnavailable as exc:
                raise PsiRefused("ENGINE_UNAVAILABLE", f"this node cannot run {name}: {exc}", 503) from None
            return SpuPsi(str(name), self._spu)

    def _spu_dir(self) -> Path:
        """SPU's work folders (input CSV, output, logs) under the node's own data dir, 0700."""
        path = self.ctx.config.data_dir / "psi-work"
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        return path

    def _register(self, sid: str, run_id: str, role: Role, peer_org: str) -> _Session:
        self._expire()
        with self._lock:
            if sid in self._sessions:
                raise PsiRefused("SESSION_EXISTS", "a PSI session with this id is open", 409)
            s = self._sessions[sid] = _Session(sid, run_id, role, peer_org)
        return s

    def _drop(self, s: _Session) -> None:
        with self._lock:
            self._sessions.pop(s.sid, None)

    def _expire(self) -> None:
        with self._lock:
            old = [k for k, s in self._sessions.items() if time.monotonic() - s.opened > SESSION_TTL_S]
            stale = [self._sessions.pop(k) for k in old]
        for s in stale:
            s.inbox.fail(PsiRefused("SESSION_EXPIRED", "the PSI session expired", 410))

    def _transport(self, s: _Session) -> HttpTransport:
        return HttpTransport(
            s.inbox,
            http=self._http,
            identity=self.ctx.identity,
            peer_url=self._peer_url(s.peer_org),
            peer_org=s.peer_org,
            session=s.sid,
        )

    def _claim(self, run_id: str, dataset: str, sid: str, role: Role) -> None:
        if not self.ctx.local.claim_psi(run_id, dataset, sid, role):
            raise PsiRefused("ALREADY_RAN", f"{dataset} already took part in run {run_id[:16]}", 409)

    def _keep(self, run_id: str, dataset: str, result: PsiResult) -> dict[str, Any]:
        ids = result.intersection
        digest = None if ids is None else output_digest(ids)
        size = None if ids is None else len(ids)
        self.ctx.local.finish_psi(run_id, dataset, "done", size=size, output_digest=digest, ids=ids)
        return {"intersection_size": size, "output_digest": digest, "peer_count": result.peer_count}

    # -- receiver (the requester's node) ---------------------------------------------------------
    def run(self, run_id: str, requester: str, session: str | None = None) -> dict[str, Any]:
        """Run the PSI of ``run_id`` as receiver; the intersection stays here, its size and digest return."""
        run, task = self._run_and_task(run_id)
        if task["requester"] != requester:
            raise PsiRefused("NOT_REQUESTER", "only the task's requester drives its runs")
        orgs = [self._org_of(i["dataset"]) for i in task["inputs"]]
        me = self.ctx.config.org
        if orgs.count(me) != 1:
            raise PsiRefused(
                "NOT_A_PARTY", f"a psi run needs exactly one input of org {me!r} (this node's)", 409
            )
        mine = orgs.index(me)
        inp, other = task["inputs"][mine], task["inputs"][1 - mine]
        peer_org = orgs[1 - mine]
        authorize_task_input(self.ctx, task, inp, "psi")
        engine = self._engine(task)
        ids = self._read_ids(inp["dataset"], run["input_digests"][mine], inp["columns"][0])
        sid = session or secrets.token_hex(16)
        self._claim(run_id, inp["dataset"], sid, "receiver")
        s = self._register(sid, run_id, "receiver", peer_org)
        output: Output = "both" if task["params"].get("output") == "both" else "receiver"
        try:
            self._open_peer(s, peer_org, other["dataset"])
            s.state = "running"
            cfg = PsiConfig(
                session=f"{run_id}/{sid}", role="receiver", output=output, idle_timeout=IDLE_TIMEOUT_S
            )
            try:
                result = engine.run(ids, self._transport(s), cfg, s.progress)
            except PsiPeerAborted as exc:
                raise PsiRefused("PEER_ABORTED", str(exc), 502) from None
            except PsiError as exc:
                raise PsiRefused("PSI_FAILED", f"the PSI run stopped: {exc}", 502) from None
            except PsiRefused:
                raise
            out = self._keep(run_id, inp["dataset"], result)
            s.state = "done"
            log.info(
                "psi run %s: receiver done, %s in the intersection", run_id[:16], out["intersection_size"]
            )
            return {"run": run_id, "session": sid, "dataset": inp["dataset"]} | out
        except PsiRefused as exc:
            s.state = f"failed: {exc.code}"
            self.ctx.local.finish_psi(run_id, inp["dataset"], "failed", reason=f"{exc.code}: {exc.message}")
            raise
        finally:
            s.inbox.fail(None)
            self._drop(s)

    def _open_peer(self, s: _Session, org: str, dataset: str) -> None:
        path = "/v1/psi/sessions"
        body = canonical_bytes(
            {"dataset": dataset, "min_height": self.ctx.replica.height, "run": s.run, "session": s.sid}
        )
        headers = sign_request(self.ctx.identity, "POST", path, "", body) | {
            "Content-Type": "application/json"
        }
        url = self._peer_url(org).rstrip("/") + path
        try:
            resp = self._http.post(url, content=body, headers=headers, timeout=httpx.Timeout(60.0))
        except httpx.HTTPError as exc:
            raise PsiRefused("PEER_UNREACHABLE", f"{org}'s node failed: {exc}", 502) from None
        if resp.status_code != 200:
            raise PsiRefused("PEER_REFUSED", f"{org}'s node refused {dataset}: {error_text(resp)}", 403)

    # -- sender (the partner's node) -------------------------------------------------------------
    def join(self, run_id: str, dataset: str, session: str, caller_key_id: str) -> dict[str, Any]:
        """(Asked by the receiver's node.) All checks, then the engine starts in the background."""
        run, task = self._run_and_task(run_id)
        caller = self.ctx.member(caller_key_id) or {}
        requester = self.ctx.member(task["requester"]) or {}
        if "node" not in caller.get("roles", ()) or caller.get("org") != requester.get("org"):
            raise PsiRefused("NOT_REQUESTERS_NODE", "only the node of the task requester's org asks")
        if self._org_of(dataset) != self.ctx.config.org:
            raise PsiRefused("WRONG_ORG", f"this node runs datasets of org {self.ctx.config.org!r} only")
        index = next((i for i, inp in enumerate(task["inputs"]) if inp["dataset"] == dataset), None)
        if index is None:
            raise PsiRefused("NOT_AN_INPUT", f"{dataset} is not an input of task {task['id'][:16]}")
        other = task["inputs"][1 - index]
        if self._org_of(other["dataset"]) != caller["org"]:
            raise PsiRefused("NOT_REQUESTERS_NODE", "the other input does not belong to the caller's org")
        inp = task["inputs"][index]
        authorize_task_input(self.ctx, task, inp, "psi")
        engine = self._engine(task)
        ids = self._read_ids(dataset, run["input_digests"][index], inp["columns"][0])
        self._claim(run_id, dataset, session, "sender")
        s = self._register(session, run_id, "sender", str(caller["org"]))
        output: Output = "both" if task["params"].get("output") == "both" else "receiver"
        cfg = PsiConfig(
            session=f"{run_id}/{session}", role="sender", output=output, idle_timeout=IDLE_TIMEOUT_S
        )
        try:
            transport = self._transport(s)
        except PsiRefused:
            self._drop(s)
            raise
        threading.Thread(
            target=self._serve,
            args=(s, engine, dataset, ids, transport, cfg),
            daemon=True,
            name="psi-sender",
        ).start()
        return {"session": session, "sender_key": self.ctx.identity.key_id}

    def _serve(
        self,
        s: _Session,
        engine: PsiEngine,
        dataset: str,
        ids: list[str],
        transport: HttpTransport,
        cfg: PsiConfig,
    ) -> None:
        s.state = "running"
        try:
            result = engine.run(ids, transport, cfg, s.progress)
            self._keep(s.run, dataset, result)
            s.state = "done"
            log.info("psi run %s: sender done", s.run[:16])
        except BaseException as exc:
            s.state = "failed"
            self.ctx.local.finish_psi(s.run, dataset, "failed", reason=str(exc)[:500])
            log.warning("psi run %s: sender stopped: %s", s.run[:16], exc)
        finally:
            self._drop(s)

    # -- inbox -----------------------------------------------------------------------------------
    def deliver(self, session: str, caller_key_id: str, message: bytes) -> None:
        """(Asked by the peer node.) Queue one engine message for the session, or refuse."""
        with self._lock:
            s = self._sessions.get(session)
        if s is None:
            raise PsiRefused("UNKNOWN_SESSION", "no such PSI session on this node (it ended or expired)", 404)
        caller = self.ctx.member(caller_key_id) or {}
        if "node" not in caller.get("roles", ()) or caller.get("org") != s.peer_org:
            raise PsiRefused("NOT_THE_PEER", "only the session's peer node posts messages to it")
        if len(message) > MAX_MESSAGE:
            s.inbox.fail(PeerRefused(f"the PSI peer sent an oversized message ({len(message)} bytes)"))
            raise PsiRefused("MESSAGE_TOO_LARGE", f"a PSI message is at most {MAX_MESSAGE} bytes", 413)
        if not s.inbox.put(message):
            raise PsiRefused("INBOX_FULL", "the PSI session's inbox is full; retry shortly", 429)

    def result(self, run_id: str, requester: str) -> dict[str, Any]:
        """This node's record of a run (no IDs): for the task's requester."""
        run, task = self.ctx.query_or_none(f"run/{run_id}"), None
        if run is not None:
            task = self.ctx.query_or_none(f"task/{run['task']}")
        if task is None or task["requester"] != requester:
            raise PsiRefused("UNKNOWN_RUN", "no such psi run of yours on this node", 404)
        rows = [{k: v for k, v in r.items() if k != "ids"} for r in self.ctx.local.psi_runs(run_id)]
        with self._lock:
            live = [x.view() for x in self._sessions.values() if x.run == run_id]
        return {"run": run_id, "parties": rows, "live": live}

    def reap_cancelled(self) -> int:
        """Stop the sessions whose run was cancelled (or ended) on this node's ledger view: the engine
        aborts, tells the peer, and keeps nothing (``run`` / ``_serve`` record the run failed)."""
        with self._lock:
            live = list(self._sessions.values())
        stopped = 0
        for s in live:
            if status := self.ctx.stopped_run(s.run):
                s.inbox.fail(PeerRefused(f"the run was {status} on the ledger"))
                stopped += 1
        return stopped

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
            pool, self._pool = self._pool, None
            spu, self._spu = self._spu, None
        for s in sessions:
            s.inbox.fail(None)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        if spu is not None:
            spu.close()
        self._http.close()
