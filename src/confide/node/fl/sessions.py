"""FL runs between org nodes: the coordinator (a node of the requester's org) and the participants
(the nodes of the orgs whose datasets are the task's inputs), over the nodes' signed links.

The requester starts the run on the ledger and asks its own node to coordinate
(``POST /v1/fl/runs``); the node trains in the background and answers progress
(``GET /v1/fl/runs/{run}``). Each round is a secure-aggregation session: the coordinator posts each
step to every participant's node (``POST /v1/fl/steps``, signed with its node key) and the answer is
that node's client message (``engines.fl.federation``).

A participant's node checks on its own ledger view, at the first step of every round, before it
reads or computes anything:

1. the caller is a node of the task's requester org; the run is ``running``; the task is an ``fl``
   task with the known code and valid params; this org holds one of its inputs;
2. its own grant for that input is live for the requester, engine ``fl`` and the input's columns
   (``enforcement.authorize_task_input``, logged either way) — a grant revoked mid-run stops this
   node's contributions from its next round;
3. the session's client ids are the inputs' order and each client's key is its org's node key on
   the ledger (so the coordinator cannot substitute a key), and
4. for a train or eval round, the model it is sent has the digest the coordinator recorded on the
   ledger for the previous round (``fl.round``): every participant trains on the same, recorded
   model, and the coordinator cannot send one participant a model of its own making.

The coordinator checks each participant's grant on its own view too and leaves out one that is not
live. It records every completed round (``fl.round``) and the final model with its validation
metrics (``fl.final``); the model stays in its node database and goes to the requester only when
its ledger view shows the release approved by every participant's dataset owner
(``POST /v1/fl/models/{run}``). The coordinator learns the sums only; no raw row and no single
update reaches it (``tests/node/test_fl_network.py`` searches its disk, logs, ledger and wire).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

import httpx
import numpy as np

from ...crypto.httpsig import sign_request
from ...engines.fl.errors import FlError
from ...engines.fl.federation import (
    Coordinator,
    FlClient,
    StepRefused,
    StepRequest,
    session_id,
    unpack_step,
    vector_length,
)
from ...engines.fl.job import FlSpec, FlSpecError, Participant, dp_record, model_digest
from ...engines.fl.secagg import SecAggConfig
from ...ledger.contract.ctx import effective_grant_status
from ...ledger.contract.fl import threshold as fl_threshold
from ...ledger.errors import LedgerError
from ...ledger.tx import build_tx
from ..context import NodeContext
from ..enforcement import authorize_task_input
from ..peers import error_text, peer_client
from ..refusal import Refused
from ..sources import read_version

__all__ = ["FlRefused", "FlSessions"]

MAX_STEP_BYTES = 64 << 20
log = logging.getLogger("confide.node.fl")


def _say(run_id: str, line: str) -> None:
    level = logging.WARNING if any(w in line for w in ("dropped", "refused", "left out")) else logging.INFO
    log.log(level, "fl run %s: %s", run_id[:16], line)


class FlRefused(Refused):
    """An FL step refused or failed; ``code`` for machines, the message for people (never data)."""


class _HttpTransport:
    """Posts each step to the participant's node, signed with this node's key. With
    ``CONFIDE_PSI_WIRE_LOG`` set (tests, audits) every request and answer is appended to that file."""

    def __init__(self, sessions: FlSessions) -> None:
        self.s = sessions
        self._log = os.environ.get("CONFIDE_PSI_WIRE_LOG")
        self._log_lock = threading.Lock()

    def _logged(self, data: bytes) -> None:
        if self._log:
            with self._log_lock, open(self._log, "ab") as f:
                f.write(data)

    def step(self, org: str, request: bytes, max_answer: int) -> bytes:
        url = self.s.ctx.config.peers.get(org)
        if url is None:
            raise FlRefused("NO_PEER", f"no link to org {org!r} configured in node.json peers", 502)
        path = "/v1/fl/steps"
        headers = sign_request(self.s.ctx.identity, "POST", path, "", request)
        self._logged(request)
        resp = self.s.http.post(
            url.rstrip("/") + path,
            content=request,
            headers=headers | {"Content-Type": "application/octet-stream"},
        )
        if resp.status_code != 200:
            raise FlRefused("PEER_REFUSED", f"{org}'s node refused: {error_text(resp)}", 502)
        if len(resp.content) > max_answer:
            raise FlRefused("TOO_LARGE", f"{org}'s answer is larger than the session allows", 502)
        self._logged(resp.content)
        return resp.content


class FlSessions:
    """The FL runs of one node (thread-safe): coordinator jobs and participant state."""

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        self._lock = threading.Lock()
        self._clients: dict[str, FlClient] = {}
        self._jobs: dict[str, threading.Thread] = {}
        self.http = peer_client(ctx, httpx.Timeout(120.0))

    # -- the plan, from the ledger ---------------------------------------------------------------
    def _plan(self, run_id: str) -> tuple[dict[str, Any], dict[str, Any], FlSpec, list[str]]:
        run = self.ctx.query_or_none(f"run/{run_id}")
        if run is None:
            raise FlRefused("UNKNOWN_RUN", f"run {run_id[:16]} is not on this node's ledger (yet)", 404)
        task = dict(self.ctx.query(f"task/{run['task']}"))
        if task["engine"] != "fl":
            raise FlRefused("NOT_FL", f"task {task['id'][:16]} uses engine {task['engine']!r}, not fl", 409)
        if run["status"] != "running":
            raise FlRefused("RUN_NOT_RUNNING", f"run {run_id[:16]} is {run['status']}", 409)
        try:
            spec = FlSpec.from_task(task)
        except FlSpecError as exc:
            raise FlRefused("BAD_TASK", str(exc), 409) from None
        orgs = [str(self.ctx.query(f"dataset/{i['dataset']}")["org"]) for i in task["inputs"]]
        return run, task, spec, orgs

    def _node_key(self, org: str) -> str:
        rec = self.ctx.query_or_none(f"org/{org}")
        if rec is None or not rec.get("node"):
            raise FlRefused("NO_NODE_KEY", f"org {org!r} has no node key on the ledger", 409)
        return str(rec["node"])

    def _grant_live(self, task: dict[str, Any], org: str, orgs: list[str]) -> str | None:
        grant_id = task["inputs"][orgs.index(org)]["grant"]
        with self.ctx.lock:
            grant = self.ctx.state.get(f"app/{grant_id}")
        if grant is None:
            return "no such grant"
        status = effective_grant_status(grant, max(self.ctx.now(), int(time.time() * 1000)))
        return None if status == "approved" else f"its grant is {status}"

    # -- coordinator -----------------------------------------------------------------------------
    def start(self, run_id: str, requester: str) -> dict[str, Any]:
        _, task, spec, orgs = self._plan(run_id)
        if task["requester"] != requester:
            raise FlRefused("NOT_REQUESTER", "only the task's requester starts its fl runs", 403)
        if task["requester_org"] != self.ctx.config.org:
            raise FlRefused("WRONG_NODE", "an fl run is coordinated by a node of the requester's org", 409)
        nodes = {org: self._node_key(org) for org in orgs}
        keys = {}
        for org, key_id in nodes.items():
            key = self.ctx.public_key(key_id)
            if key is None:
                raise FlRefused("NO_NODE_KEY", f"the node key of {org!r} is not an active member", 409)
            keys[org] = key
        if not self.ctx.local.claim_fl(run_id, "coordinator"):
            raise FlRefused("ALREADY_RAN", f"this node already coordinated run {run_id[:16]}", 409)
        coordinator = Coordinator(
            run_id,
            spec,
            orgs,
            nodes,
            keys,
            fl_threshold(task),
            _HttpTransport(self),
            lambda rnd, parts, dropped, digest: self._record_round(run_id, rnd, parts, dropped, digest),
            start_height=self.ctx.replica.height,
            eligible=lambda org: self._grant_live(task, org, orgs),
            say=lambda s: _say(run_id, s),
            progress=lambda p: self._progress(run_id, p),
        )
        job = threading.Thread(
            target=self._coordinate,
            args=(run_id, task, spec, coordinator),
            daemon=True,
            name="fl-coordinator",
        )
        with self._lock:
            self._jobs[run_id] = job
        job.start()
        return {"run": run_id, "status": "running", "participants": orgs, "rounds": spec.rounds}

    def _submit(self, tx_type: str, payload: dict[str, Any]) -> int:
        receipt = self.ctx.remote.submit(
            build_tx(self.ctx.identity, self.ctx.genesis.chain_id, tx_type, payload)
        )
        self.ctx.follower.nudge()
        if not self.ctx.follower.wait_for(receipt.height, 30.0):
            raise FlRefused("BEHIND", "this node did not reach the block of its own round record", 504)
        return receipt.height

    def _record_round(self, run_id: str, rnd: int, parts: list[str], dropped: list[str], digest: str) -> int:
        payload = {
            "run": run_id,
            "round": rnd,
            "participants": parts,
            "dropped": dropped,
            "model_digest": digest,
        }
        return self._submit("fl.round", payload)

    def _progress(self, run_id: str, p: dict[str, Any]) -> None:
        rec = self.ctx.local.fl_run(run_id) or {}
        done = list((rec.get("progress") or {}).get("rounds_done", []))
        done.append({k: p[k] for k in ("phase", "round", "participants", "dropped")})
        self.ctx.local.update_fl(run_id, progress={"rounds": p["rounds"], "rounds_done": done})

    def _coordinate(self, run_id: str, task: dict[str, Any], spec: FlSpec, coordinator: Coordinator) -> None:
        try:
            out = coordinator.train()
            metrics = out.metrics | dp_record(spec, fl_threshold(task))
            if spec.holdout is None:
                metrics["val_kind"] = "training_rows"
            self._submit(
                "fl.final",
                {
                    "run": run_id,
                    "model_digest": out.digest,
                    "participants": out.eval_participants,
                    "metrics": metrics,
                },
            )
            model = {
                "spec": spec.record(),
                "mean": out.std.mean.tolist(),
                "scale": out.std.scale.tolist(),
                "total_rows": out.std.total_rows,
                "params": out.params.tolist(),
            }
            self.ctx.local.update_fl(run_id, status="done", model=model, model_digest=out.digest)
        except (FlError, Refused, LedgerError, httpx.HTTPError, OSError) as exc:
            reason = exc.message if isinstance(exc, Refused) else f"{type(exc).__name__}: {exc}"
            log.warning("fl run %s failed: %s", run_id[:16], reason)
            self.ctx.local.update_fl(run_id, status="failed", reason=reason)
        except Exception as exc:  # the thread must leave a failed record, whatever went wrong
            log.exception("fl run %s failed", run_id[:16])
            self.ctx.local.update_fl(run_id, status="failed", reason=f"internal error: {type(exc).__name__}")

    def status(self, run_id: str, caller: str) -> dict[str, Any]:
        rec = self.ctx.local.fl_run(run_id)
        if rec is None or rec["role"] != "coordinator":
            raise FlRefused("UNKNOWN_RUN", f"this node coordinates no run {run_id[:16]}", 404)
        task = self.ctx.query(f"task/{self.ctx.query(f'run/{run_id}')['task']}")
        if task["requester"] != caller:
            raise FlRefused("NOT_REQUESTER", "only the task's requester follows its fl runs", 403)
        out = {k: rec[k] for k in ("run", "status", "progress", "model_digest", "reason")}
        final = self.ctx.query(f"run/{run_id}").get("fl_final")
        if final is not None:
            out["metrics"] = final["metrics"]
        return out

    def model(self, run_id: str, caller: str) -> dict[str, Any]:
        """The final model, once this node's ledger view shows its release approved by every owner."""
        rec = self.ctx.local.fl_run(run_id)
        run = self.ctx.query_or_none(f"run/{run_id}")
        if rec is None or rec["role"] != "coordinator" or run is None:
            raise FlRefused("UNKNOWN_RUN", f"this node coordinates no run {run_id[:16]}", 404)
        task = self.ctx.query(f"task/{run['task']}")
        if task["requester"] != caller:
            raise FlRefused("NOT_REQUESTER", "only the task's requester receives the model", 403)
        release = self.ctx.query_or_none(f"release/{run_id}")
        status = "not requested (the run has not finished)" if release is None else release["status"]
        if release is None or release["status"] != "released":
            raise FlRefused(
                "NOT_RELEASED",
                f"the model's release is {status}; every participant's owner must approve it first",
                409,
            )
        if rec["model"] is None or rec["model_digest"] != release["output_digest"]:
            raise FlRefused("NO_MODEL", "this node holds no model with the released digest", 409)
        return {"run": run_id, "model_digest": rec["model_digest"], "model": rec["model"]}

    # -- participant -----------------------------------------------------------------------------
    def step(self, caller_key_id: str, body: bytes) -> bytes:
        try:
            req = unpack_step(body, MAX_STEP_BYTES)
            self._catch_up(req.model_height)  # the coordinator's view: the run, the last round's model
            run, task, spec, orgs = self._plan(req.run)
            caller = self.ctx.member(caller_key_id)
            if caller is None or "node" not in caller["roles"] or caller["org"] != task["requester_org"]:
                raise FlRefused("NOT_COORDINATOR", "only a node of the requester's org coordinates", 403)
            me = self.ctx.config.org
            if me not in orgs:
                raise FlRefused("NOT_A_PARTICIPANT", f"org {me!r} holds no input of this fl task", 409)
            if req.step == 0:
                return self._begin(req, run, task, spec, orgs)
            with self._lock:
                client = self._clients.get(req.run)
            if client is None:
                raise FlRefused("NO_SESSION", "no fl session of this run is open on this node", 409)
            return client.step(req)
        except StepRefused as exc:
            raise FlRefused("STEP_REFUSED", str(exc), 409) from None

    def _begin(
        self, req: StepRequest, run: dict[str, Any], task: dict[str, Any], spec: FlSpec, orgs: list[str]
    ) -> bytes:
        me = self.ctx.config.org
        idx = orgs.index(me)
        authorize_task_input(self.ctx, task, task["inputs"][idx], "fl")
        if req.clients != {o: i + 1 for i, o in enumerate(orgs)}:
            raise FlRefused("BAD_SESSION", "the session's client ids are not the task inputs' order", 409)
        if req.nodes != {o: self._node_key(o) for o in orgs}:
            raise FlRefused("BAD_SESSION", "a client key is not its org's node key on the ledger", 409)
        if req.phase != "setup":
            self._check_model(req, spec)
        client = self._client(req.run, run, task, spec, orgs, idx)
        keys = {i: self.ctx.public_key(req.nodes[o]) for o, i in req.clients.items()}
        if any(k is None for k in keys.values()):
            raise FlRefused("BAD_SESSION", "a node key is not an active member", 409)
        config = SecAggConfig(
            session_id(req.run, req.phase, req.round),
            tuple(req.clients.values()),
            vector_length(spec, req.phase),
            fl_threshold(task),
            identity_keys={i: k for i, k in keys.items() if k is not None},
        )
        rng = np.random.default_rng([spec.seed, idx, req.round])
        return client.begin(req, config, idx + 1, rng)

    def _catch_up(self, height: int) -> None:
        if height > self.ctx.replica.height and not self.ctx.follower.wait_for(height, 15.0):
            raise FlRefused("BEHIND", f"this node has not reached height {height} yet", 504)

    def _check_model(self, req: StepRequest, spec: FlSpec) -> None:
        rounds = (self.ctx.query(f"run/{req.run}").get("fl_rounds")) or []
        want = req.round if req.phase == "train" else spec.rounds + 1
        if len(rounds) != want:
            raise FlRefused(
                "MODEL_NOT_RECORDED",
                f"{req.phase} round {req.round}: the ledger holds {len(rounds)} recorded rounds, not {want}",
                409,
            )
        digest = model_digest(spec, req.standardization(), req.params(spec.n_params))
        if digest != rounds[-1]["model_digest"]:
            raise FlRefused(
                "MODEL_MISMATCH",
                "the model sent is not the one recorded on the ledger for the previous round",
                409,
            )

    def _client(
        self, run_id: str, run: dict[str, Any], task: dict[str, Any], spec: FlSpec, orgs: list[str], idx: int
    ) -> FlClient:
        with self._lock:
            client = self._clients.get(run_id)
        if client is not None:
            return client
        if not self.ctx.local.claim_fl(run_id, "participant"):
            raise FlRefused("ALREADY_RAN", f"this node already took part in run {run_id[:16]}", 409)
        inp = task["inputs"][idx]
        try:
            table = _numeric(self.ctx, inp["dataset"], run["input_digests"][idx], list(inp["columns"]))
            client = FlClient(
                run_id,
                spec,
                Participant(spec, table, list(inp["columns"])),
                self.ctx.identity,
                fl_threshold(task),
            )
        except (FlSpecError, Refused) as exc:
            self.ctx.local.update_fl(run_id, status="failed", reason=str(exc))
            raise
        with self._lock:
            self._clients[run_id] = client
        return client

    def reap_finished(self) -> int:
        """Forget the participant state of runs that ended on this node's ledger view."""
        with self._lock:
            ids = list(self._clients)
        gone = 0
        for run_id in ids:
            run = self.ctx.query_or_none(f"run/{run_id}")
            if run is not None and run["status"] != "running":
                with self._lock:
                    self._clients.pop(run_id, None)
                self.ctx.local.update_fl(run_id, status=run["status"])
                gone += 1
        return gone

    def close(self) -> None:
        self.http.close()


def _numeric(ctx: NodeContext, dataset: str, digest: str, columns: list[str]) -> np.ndarray:
    """The input's columns as one float64 matrix; refused ``BAD_VALUES`` on a missing or non-numeric
    value (named by column, never by value)."""
    parts = []
    for batch in read_version(ctx, dataset, digest, columns):
        cols = []
        for name, col in zip(columns, batch.columns, strict=True):
            try:
                arr = np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)
            except (TypeError, ValueError):
                raise FlRefused("BAD_VALUES", f"{dataset}: column {name} is not numeric", 409) from None
            if not np.isfinite(arr).all():
                raise FlRefused(
                    "BAD_VALUES", f"{dataset}: column {name} has a missing or non-finite value", 409
                )
            cols.append(arr)
        parts.append(np.column_stack(cols) if cols else np.zeros((0, len(columns))))
    if not parts:
        return np.zeros((0, len(columns)))
    return np.vstack(parts)
