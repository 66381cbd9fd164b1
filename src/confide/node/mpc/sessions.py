"""MPC runs between org nodes: joint statistics on PSI-aligned rows (``engines.mpc.stats``).

Three nodes take part: party 0 is the requester's org (one task input), party 1 the partner's org
(the other input), and the dealer (``params.dealer``, an org that is neither) deals Beaver material.
The task's requester drives a run through its own node (``POST /v1/mpc/runs``). Each node checks,
on its own ledger view and before it reads a single value:

1. the run is ``running``, started at most :data:`MAX_RUN_AGE_MS` ago, its task is an ``mpc`` task
   with a known code (:data:`MPC_CODE` or :data:`MPC_LR_CODE`), exactly two inputs
   ``[ID column, value columns...]``, and params naming a finished psi run over the same two ID
   columns with ``output: both`` and a dealer org that is neither party's;
2. party 0: the caller is the task's requester; party 1 and the dealer: the caller is a node of the
   requester's org;
3. each party: its own grant is live for the requester, engine ``mpc`` and the input's columns
   (``enforcement.authorize_use``, logged either way); the dealer reads no data;
4. this run never ran here before (claimed in the node's database first).

Each party reads only the task's columns through the connector, keeps the rows whose ID is in its
own record of the psi run's intersection, sorts them by ID and runs its side of the protocol;
messages are node-signed posts to the peers' inboxes (``/v1/mpc/sessions/{s}/messages``). The
outputs stay as shares: each party keeps its share message (``reveal_message``) in its own node
database and answers only its SHA-256. The requester commits to both on the ledger with
``run.finish`` (``output_digest`` = SHA-256 of canonical JSON ``{org: share digest}``), which opens
the release record; a party's node hands its share to the requester only when its own ledger view
shows that release ``released`` (every input owner approved). One share alone is uniformly random.

Joint statistics may also cross two tiers held by different parties (params ``cross_key`` and
``n_cross``, with ``group_key``): each party expands its own columns locally before sharing. The key
owner's value columns ``v`` become ``v * [key = i]`` per group ``i``; the other party's become
``[cross = j]`` and ``v * [cross = j]`` per level ``j``. The group-by then yields, per cell (i, j), the
count and the sums of the other party's values, and the cross moments of the covariance yield the
sums of the key owner's values per cell (``interfaces.mpc.segment_table``).

A second task code, :data:`MPC_LR_CODE` (``mpc-ss-lr/v1``), trains a vertical logistic regression
(``engines.mpc.logreg.train_ss``) on the same aligned rows: the requester's input holds the 0/1
label (``params.label``, ``'<dataset>:<column>'``), both inputs hold features; ``epochs``,
``batch_size``, ``lr_milli`` (learning rate x 1000: the ledger signs no floats), ``shuffle_seed``.
**Each party standardizes its own feature columns on its own aligned rows** (mean 0, std 1) before
sharing; the means and deviations never leave it. The weights stay shares; inside the MPC the linear scores
``u = [X_0 | X_1 | 1] w`` of every aligned row are computed and **only the scores are output**
(shares, released like the statistics). The requester learns one number per overlapping customer
(the score; with its own columns known, that reveals the partner's 1-D projection ``X_1 w_1`` per
row), never the partner's feature columns or the weights. Party 0's node adds the aligned IDs
(its own psi intersection, in the scores' order) to its share answer, so the requester can attach
the scores to its customers and compute the AUC against its own labels.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import secrets
import threading
import time
import unicodedata
from collections.abc import Callable, Generator
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import httpx
import numpy as np

from ...crypto.canonical import canonical_bytes
from ...crypto.httpsig import sign_request
from ...engines.mpc import MpcAbortedError, MpcError, PartyContext, PartyRunner, reveal_message
from ...engines.mpc import fixedpoint as fp
from ...engines.mpc.beaver import Dealer, MatTriple, Spec
from ...engines.mpc.fixedpoint import Ring
from ...engines.mpc.logreg import LrSpec, train_ss
from ...engines.mpc.program import Inbound, Round
from ...engines.mpc.stats import StatsSpec, joint_stats
from ...engines.psi.registry import engine_of
from ...engines.tee.wire import box_for_requester
from ..context import NodeContext
from ..enforcement import authorize_task_input
from ..peers import error_text, peer_client
from ..psi.transport import Inbox
from ..refusal import Refused
from ..sources import read_version

__all__ = [
    "DEALER",
    "MAX_MESSAGE",
    "MAX_RUN_AGE_MS",
    "MPC_CODE",
    "MPC_CODE_DIGEST",
    "MPC_LR_CODE",
    "MPC_LR_CODE_DIGEST",
    "REQUESTER",
    "MpcRefused",
    "MpcSessions",
    "commitment",
    "session_bytes",
]

MPC_CODE = "mpc-joint-stats/v1"
MPC_CODE_DIGEST = hashlib.sha256(MPC_CODE.encode("utf-8")).hexdigest()
MPC_LR_CODE = "mpc-ss-lr/v1"
MPC_LR_CODE_DIGEST = hashlib.sha256(MPC_LR_CODE.encode("utf-8")).hexdigest()
MAX_LR_ROWS = 1 << 22
MAX_CROSS = 64
MAX_RUN_AGE_MS = 30 * 60 * 1000
MAX_MESSAGE = 64 << 20
MAX_GROUPS = 1000
DEALER = 2  # the dealer's party id; the compute parties are 0 (requester's org) and 1 (partner)
REQUESTER = 9  # the receiver id in reveal messages (the task's requester, not a compute party)
IDLE_TIMEOUT_S = 60.0
SESSION_TTL_S = 30 * 60
ABORT = b"ABORT:"
log = logging.getLogger("confide.node.mpc")


class MpcRefused(Refused):
    """An MPC step refused or failed; ``code`` for machines, the message for people (never data)."""


def session_bytes(run_id: str, session: str) -> bytes:
    """The engine's 16-byte session id, bound to the run and the node session."""
    return hashlib.sha256(f"confide-mpc/{run_id}/{session}".encode()).digest()[:16]


def commitment(share_digests: dict[str, str]) -> str:
    """``output_digest`` of an mpc run: SHA-256 of canonical JSON ``{party org: SHA-256(share)}``."""
    return hashlib.sha256(canonical_bytes(share_digests)).hexdigest()


@dataclass(frozen=True)
class Plan:
    """Everything public about a run that every node derives from the ledger alone (party order)."""

    run: dict[str, Any]
    task: dict[str, Any]
    orgs: tuple[str, str]  # org of party 0 (the requester's org) and of party 1
    inputs: tuple[dict[str, Any], dict[str, Any]]
    digests: tuple[str, str]  # the dataset version each party's input runs on
    dealer: str
    spec: StatsSpec
    value_columns: tuple[list[str], list[str]]
    key_column: str | None
    psi_run: str
    lr: LrSpec | None = None  # set for an SS-LR task (MPC_LR_CODE); the label is the "group key"
    cross_column: str | None = None  # the other party's tier column crossed with the group key
    n_cross: int = 0

    def with_rows(self, n_rows: int) -> Plan:
        lr = None if self.lr is None else replace(self.lr, n_rows=n_rows)
        return replace(self, spec=replace(self.spec, n_rows=n_rows), lr=lr)

    def spec_record(self) -> dict[str, Any]:
        """What a party's node stores (and hands out with its share) as the run's public spec."""
        return asdict(self.spec) if self.lr is None else {"kind": "ss-lr", **asdict(self.lr)}

    def column_names(self) -> list[str]:
        return [f"{self.inputs[p]['dataset']}:{c}" for p in (0, 1) for c in self.value_columns[p]]


@dataclass
class _Session:
    sid: str
    run: str
    me: int
    peers: dict[str, int]  # org -> party id
    inboxes: dict[int, Inbox] = field(default_factory=dict)
    opened: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.inboxes = {p: Inbox() for p in self.peers.values()}


class MpcSessions:
    """The MPC sessions of one node (thread-safe)."""

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        self._lock = threading.Lock()
        self._sessions: dict[str, _Session] = {}
        self._http = peer_client(ctx, httpx.Timeout(60.0))

    # -- the plan, from the ledger ---------------------------------------------------------------
    def _org_of(self, dataset: str) -> str:
        ds = self.ctx.query_or_none(f"dataset/{dataset}")
        if ds is None:
            raise MpcRefused("UNKNOWN_DATASET", f"dataset {dataset} is not on the ledger", 404)
        return str(ds["org"])

    def plan(self, run_id: str) -> Plan:
        run = self.ctx.query_or_none(f"run/{run_id}")
        if run is None:
            raise MpcRefused("UNKNOWN_RUN", f"run {run_id[:16]} is not on this node's ledger (yet)", 404)
        task = dict(self.ctx.query(f"task/{run['task']}"))
        if task["engine"] != "mpc":
            raise MpcRefused(
                "NOT_MPC", f"task {task['id'][:16]} uses engine {task['engine']!r}, not mpc", 409
            )
        if task["code_digest"] not in (MPC_CODE_DIGEST, MPC_LR_CODE_DIGEST):
            raise MpcRefused(
                "UNKNOWN_CODE", f"the task's code digest is not {MPC_CODE!r} or {MPC_LR_CODE!r}", 409
            )
        is_lr = task["code_digest"] == MPC_LR_CODE_DIGEST
        ins = task["inputs"]
        if len(ins) != 2 or any(len(i["columns"]) < 2 for i in ins):
            raise MpcRefused(
                "BAD_TASK", "an mpc task has two inputs, each [ID column, value columns...]", 409
            )
        if run["status"] != "running":
            raise MpcRefused("RUN_NOT_RUNNING", f"run {run_id[:16]} is {run['status']}", 409)
        if self.ctx.now() - int(run["started_at"]) > MAX_RUN_AGE_MS:
            raise MpcRefused("RUN_TOO_OLD", "the run started too long ago; start a new run", 409)
        req_org = str(task["requester_org"])
        orgs = [self._org_of(i["dataset"]) for i in ins]
        if orgs.count(req_org) != 1 or orgs[0] == orgs[1]:
            raise MpcRefused(
                "BAD_TASK", "one input is the requester org's dataset, the other a partner's", 409
            )
        first = orgs.index(req_org)
        by_party = [ins[first], ins[1 - first]]
        party_orgs = (orgs[first], orgs[1 - first])
        params = task["params"]
        dealer = params.get("dealer")
        if not isinstance(dealer, str) or not dealer:
            raise MpcRefused("BAD_TASK", "params.dealer names the org whose node deals Beaver triples", 409)
        if dealer in party_orgs:
            raise MpcRefused(
                "DEALER_IS_A_PARTY",
                f"the dealer ({dealer!r}) must be a third org: a dealer that is also a party would learn "
                "the other party's inputs",
                409,
            )
        if self.ctx.query_or_none(f"org/{dealer}") is None:
            raise MpcRefused("BAD_TASK", f"params.dealer: no org {dealer!r} on the ledger", 409)
        psi_run = params.get("psi_run")
        if not isinstance(psi_run, str):
            raise MpcRefused("BAD_TASK", "params.psi_run names the psi run that aligns the rows", 409)
        self._check_psi(psi_run, by_party)
        key_column, key_owner, n_groups = None, 0, 1
        values = [list(i["columns"][1:]) for i in by_party]
        if is_lr:
            return self._lr_plan(run, task, party_orgs, by_party, first, dealer, psi_run, values)
        gk = params.get("group_key")
        if gk is not None:
            if not isinstance(gk, str) or ":" not in gk:
                raise MpcRefused("BAD_TASK", "params.group_key is '<dataset>:<column>'", 409)
            ds, col = gk.rsplit(":", 1)
            owner = next((p for p in (0, 1) if by_party[p]["dataset"] == ds), None)
            if owner is None or col not in values[owner]:
                raise MpcRefused("BAD_TASK", "params.group_key: a value column of one input", 409)
            ng = params.get("n_groups")
            if type(ng) is not int or not 1 <= ng <= MAX_GROUPS:
                raise MpcRefused("BAD_TASK", f"params.n_groups: an integer in [1, {MAX_GROUPS}]", 409)
            values[owner].remove(col)
            key_column, key_owner, n_groups = col, owner, ng
        cross_column, n_cross = None, 0
        ck = params.get("cross_key")
        if ck is not None:
            other = 1 - key_owner
            if key_column is None or not isinstance(ck, str) or ":" not in ck:
                raise MpcRefused(
                    "BAD_TASK", "params.cross_key is '<dataset>:<column>', with a group_key", 409
                )
            ds, col = ck.rsplit(":", 1)
            if by_party[other]["dataset"] != ds or col not in values[other]:
                raise MpcRefused("BAD_TASK", "params.cross_key: a value column of the other input", 409)
            nc = params.get("n_cross")
            if type(nc) is not int or not 1 <= nc <= MAX_CROSS:
                raise MpcRefused("BAD_TASK", f"params.n_cross: an integer in [1, {MAX_CROSS}]", 409)
            values[other].remove(col)
            cross_column, n_cross = col, nc
        if not values[0] or not values[1]:
            raise MpcRefused("BAD_TASK", "each input needs at least one value column", 409)
        ks = [len(values[0]), len(values[1])]
        if cross_column is not None:  # expanded locally by each party (see the module docstring)
            ks[key_owner] *= n_groups
            ks[1 - key_owner] = n_cross * (1 + ks[1 - key_owner])
        spec = StatsSpec(0, ks[0], ks[1], n_groups, key_owner, n_cross, self._min_cell(task))
        digests = (str(run["input_digests"][first]), str(run["input_digests"][1 - first]))
        return Plan(
            dict(run),
            task,
            party_orgs,
            (by_party[0], by_party[1]),
            digests,
            dealer,
            spec,
            (values[0], values[1]),
            key_column,
            psi_run,
            cross_column=cross_column,
            n_cross=n_cross,
        )

    def _lr_plan(
        self,
        run: dict[str, Any],
        task: dict[str, Any],
        party_orgs: tuple[str, str],
        by_party: list[dict[str, Any]],
        first: int,
        dealer: str,
        psi_run: str,
        values: list[list[str]],
    ) -> Plan:
        params = task["params"]
        label = params.get("label")
        if not isinstance(label, str) or ":" not in label:
            raise MpcRefused("BAD_TASK", "params.label is '<dataset>:<column>' of the requester's input", 409)
        ds, col = label.rsplit(":", 1)
        if by_party[0]["dataset"] != ds or col not in values[0]:
            raise MpcRefused("BAD_TASK", "params.label: a column of the requester org's input", 409)
        values[0].remove(col)
        if not values[0] or not values[1]:
            raise MpcRefused("BAD_TASK", "each input needs at least one feature column", 409)
        epochs, batch, lr_rate = (
            params.get("epochs", 5),
            params.get("batch_size", 256),
            params.get("lr_milli", 1000),
        )
        seed = params.get("shuffle_seed", 0)
        if type(epochs) is not int or not 1 <= epochs <= 100:
            raise MpcRefused("BAD_TASK", "params.epochs: an integer in [1, 100]", 409)
        if type(batch) is not int or not 2 <= batch <= 4096 or batch & (batch - 1):
            raise MpcRefused("BAD_TASK", "params.batch_size: a power of two in [2, 4096]", 409)
        if type(lr_rate) is not int or not 1 <= lr_rate <= 8000:
            raise MpcRefused("BAD_TASK", "params.lr_milli: the learning rate in thousandths, [1, 8000]", 409)
        if type(seed) is not int or not 0 <= seed < 2**32:
            raise MpcRefused("BAD_TASK", "params.shuffle_seed: an integer in [0, 2^32)", 409)
        spec = StatsSpec(0, len(values[0]), len(values[1]), 2, 0)
        lr = LrSpec(0, len(values[0]), len(values[1]), 0, epochs, batch, lr_rate / 1000, seed)
        digests = (str(run["input_digests"][first]), str(run["input_digests"][1 - first]))
        return Plan(
            dict(run),
            task,
            party_orgs,
            (by_party[0], by_party[1]),
            digests,
            dealer,
            spec,
            (values[0], values[1]),
            col,
            psi_run,
            lr=lr,
        )

    def _min_cell(self, task: dict[str, Any]) -> int:
        """The larger of the inputs' ``min_group_size`` policies (on this node's ledger view) and the
        task's ``params.min_cell``: enforced inside the MPC (``stats.suppress``) on every group,
        tier and cell of the outputs, and on the aligned rows as a whole (refused below it)."""
        asked = task["params"].get("min_cell", 0)
        if type(asked) is not int or asked < 0 or asked > 1_000_000:
            raise MpcRefused("BAD_TASK", "params.min_cell: an integer in [0, 1000000]", 409)
        policy = [
            self.ctx.query(f"dataset/{i['dataset']}").get("min_group_size") or 0 for i in task["inputs"]
        ]
        return max([asked, *policy])

    def _check_min_rows(self, plan: Plan) -> None:
        if plan.lr is None and plan.spec.n_rows < plan.spec.min_cell:
            raise MpcRefused(
                "TOO_FEW_ROWS",
                f"{plan.spec.n_rows} aligned rows, fewer than the minimum cell size {plan.spec.min_cell}",
                409,
            )

    def _check_psi(self, psi_run: str, by_party: list[dict[str, Any]]) -> None:
        run = self.ctx.query_or_none(f"run/{psi_run}")
        if run is None or run["status"] != "succeeded":
            raise MpcRefused("BAD_PSI_RUN", f"params.psi_run {psi_run[:16]} is not a succeeded run", 409)
        task = self.ctx.query(f"task/{run['task']}")
        if task["engine"] != "psi" or engine_of(task["code_digest"]) is None:
            raise MpcRefused("BAD_PSI_RUN", "params.psi_run is not a run of a psi task", 409)
        if task["params"].get("output") != "both":
            raise MpcRefused("BAD_PSI_RUN", "the psi run must have output 'both' (both parties align)", 409)
        want = sorted((i["dataset"], i["columns"][0]) for i in by_party)
        got = sorted((i["dataset"], i["columns"][0]) for i in task["inputs"])
        if want != got:
            raise MpcRefused("BAD_PSI_RUN", "the psi run is not over the same datasets' ID columns", 409)

    # -- data ------------------------------------------------------------------------------------
    def _aligned(self, plan: Plan, party: int) -> tuple[np.ndarray, np.ndarray | None]:
        """This party's value columns (and group keys) on the psi intersection, sorted by ID."""
        inp = plan.inputs[party]
        dataset = inp["dataset"]
        rec = next((r for r in self.ctx.local.psi_runs(plan.psi_run) if r["dataset"] == dataset), None)
        if rec is None or rec["status"] != "done" or rec["ids"] is None:
            raise MpcRefused(
                "NO_INTERSECTION", f"this node holds no intersection of psi run {plan.psi_run[:16]}", 409
            )
        common = {unicodedata.normalize("NFC", str(i)) for i in rec["ids"]}
        cols = list(inp["columns"])
        batches = list(read_version(self.ctx, dataset, plan.digests[party], cols))
        rows: dict[str, list[Any]] = {}
        for b in batches:
            ids = b.column(0).to_pylist()
            data = [b.column(j).to_pylist() for j in range(1, len(cols))]
            for r, raw in enumerate(ids):
                if raw is None:
                    continue
                key = unicodedata.normalize("NFC", str(raw))
                if key not in common:
                    continue
                if key in rows:
                    raise MpcRefused("DUPLICATE_IDS", f"{dataset} has an ID twice in the intersection", 409)
                rows[key] = [d[r] for d in data]
        if len(rows) != len(common):
            raise MpcRefused("DATA_CHANGED", f"{dataset} no longer has every ID of the intersection", 409)
        order = sorted(rows)
        names = cols[1:]
        vidx = [names.index(c) for c in plan.value_columns[party]]
        try:
            table = np.array([[float(rows[k][j]) for j in vidx] for k in order], dtype=np.float64)
            keys = None
            if plan.spec.key_owner == party:  # no group key: one group holding every row
                keys = np.zeros(len(order), dtype=np.int64)
            if plan.key_column is not None and plan.spec.key_owner == party:
                kj = names.index(plan.key_column)
                raw_keys = [float(rows[k][kj]) for k in order]
                if any(not v.is_integer() for v in raw_keys):
                    raise ValueError("group keys are integers")
                keys = np.array(raw_keys, dtype=np.int64)
        except (TypeError, ValueError):
            raise MpcRefused(
                "BAD_VALUES", f"{dataset}: a value column has a missing or non-numeric value", 409
            ) from None
        table = table.reshape(len(order), len(vidx))
        if not np.isfinite(table).all():
            raise MpcRefused("BAD_VALUES", f"{dataset}: a value column has a non-finite value", 409)
        if keys is not None and len(keys) and (keys.min() < 0 or keys.max() >= plan.spec.n_groups):
            raise MpcRefused(
                "BAD_GROUP_KEY", f"group keys must be integers in [0, {plan.spec.n_groups})", 409
            )
        if plan.cross_column is not None:
            if keys is not None:  # the key owner: v * [key = i], per value column, per group
                hot = np.eye(plan.spec.n_groups)[keys]
                table = (table[:, :, None] * hot[:, None, :]).reshape(len(order), -1)
            else:  # the other party: [cross = j] per level, then v * [cross = j] per column, per level
                raw = [float(rows[k][names.index(plan.cross_column)]) for k in order]
                if any(not v.is_integer() or not 0 <= v < plan.n_cross for v in raw):
                    raise MpcRefused(
                        "BAD_CROSS_KEY", f"{plan.cross_column}: integers in [0, {plan.n_cross})", 409
                    )
                hot = np.eye(plan.n_cross)[np.array(raw, dtype=np.int64)].reshape(len(order), plan.n_cross)
                prod = (table[:, :, None] * hot[:, None, :]).reshape(len(order), -1)
                table = np.hstack([hot, prod])
        return table, keys

    # -- sessions and links ----------------------------------------------------------------------
    def _peer_url(self, org: str) -> str:
        url = self.ctx.config.peers.get(org)
        if url is None:
            raise MpcRefused("NO_PEER", f"no link to org {org!r} configured in node.json peers", 502)
        return url.rstrip("/")

    def _register(self, sid: str, run_id: str, me: int, plan: Plan) -> _Session:
        self._expire()
        orgs = {plan.orgs[0]: 0, plan.orgs[1]: 1, plan.dealer: DEALER}
        peers = {o: p for o, p in orgs.items() if p != me}
        for org in peers:
            self._peer_url(org)
        with self._lock:
            if sid in self._sessions:
                raise MpcRefused("SESSION_EXISTS", "an MPC session with this id is open", 409)
            s = self._sessions[sid] = _Session(sid, run_id, me, peers)
        return s

    def _register_claimed(self, sid: str, run_id: str, me: int, plan: Plan) -> _Session:
        try:
            return self._register(sid, run_id, me, plan)
        except MpcRefused as exc:
            self.ctx.local.finish_mpc(run_id, "failed", reason=f"{exc.code}: {exc.message}")
            raise

    def _drop(self, s: _Session) -> None:
        with self._lock:
            self._sessions.pop(s.sid, None)
        for inbox in s.inboxes.values():
            inbox.fail(None)

    def _expire(self) -> None:
        with self._lock:
            old = [k for k, s in self._sessions.items() if time.monotonic() - s.opened > SESSION_TTL_S]
            stale = [self._sessions.pop(k) for k in old]
        for s in stale:
            for inbox in s.inboxes.values():
                inbox.fail(MpcAbortedError("the MPC session expired"))

    def _claim(self, run_id: str, sid: str, role: str, party: int, dataset: str | None) -> None:
        if not self.ctx.local.claim_mpc(run_id, sid, role, party, dataset):
            raise MpcRefused("ALREADY_RAN", f"this node already took part in run {run_id[:16]}", 409)

    def _post(self, org: str, path: str, body: bytes, kind: str) -> httpx.Response:
        headers = sign_request(self.ctx.identity, "POST", path, "", body) | {"Content-Type": kind}
        return self._http.post(self._peer_url(org) + path, content=body, headers=headers)

    def _send(self, s: _Session, party: int, message: bytes) -> None:
        org = next(o for o, p in s.peers.items() if p == party)
        path = f"/v1/mpc/sessions/{s.sid}/messages"
        deadline, delay = time.monotonic() + IDLE_TIMEOUT_S, 0.02
        while True:
            try:
                resp = self._post(org, path, message, "application/octet-stream")
            except httpx.HTTPError as exc:
                raise MpcError(f"{org}'s node is unreachable: {exc}") from None
            if resp.status_code in (200, 202):
                return
            if resp.status_code != 429 or time.monotonic() > deadline:
                raise MpcError(f"{org}'s node refused an MPC message: {error_text(resp)}")
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    def _abort_peers(self, s: _Session, reason: str, skip: str | None = None) -> None:
        for org, party in s.peers.items():
            if org == skip:  # the peer that failed: an ABORT to it would wait out its timeout again
                continue
            with contextlib.suppress(MpcError):
                self._send(s, party, ABORT + reason.encode()[:400])

    def _drive(self, s: _Session, program: Generator[Round, Inbound, Any]) -> Any:
        runner: PartyRunner[Any] = PartyRunner(program)
        rnd = runner.start()
        while rnd is not None:
            for dst, data in rnd.send.items():
                self._send(s, dst, data)
            inbound: dict[int, bytes] = {}
            for src in sorted(rnd.recv):
                try:
                    inbound[src] = s.inboxes[src].get(IDLE_TIMEOUT_S)
                except TimeoutError:
                    raise MpcError(f"no message from party {src} within {IDLE_TIMEOUT_S:g} s") from None
                except EOFError:
                    raise MpcAbortedError("the MPC session was closed") from None
            rnd = runner.step(inbound)
        return runner.result

    def _party_program(self, plan: Plan, s: _Session, table: np.ndarray, keys: np.ndarray | None) -> bytes:
        """Run this party's side; returns its share message (for the requester, after release)."""
        sess = session_bytes(plan.run["id"], s.sid)
        pctx = PartyContext(s.me, (0, 1), sess, dealer=DEALER)
        if plan.lr is not None:
            labels = None if keys is None else keys.astype(np.float64)
            program = _lr_scores(pctx, plan.lr, _standardize(table), labels)
        else:
            levels = None
            if plan.spec.n_levels and keys is None:  # the tier party: its first columns are [tier = j]
                levels = np.rint(table[:, : plan.spec.n_levels]).astype(np.int64)
            program = joint_stats(pctx, plan.spec, table, keys, levels)
        shares: list[Ring] = self._drive(s, program)
        return reveal_message(sess, s.me, REQUESTER, shares)

    def _dealer_program(self, plan: Plan, s: _Session) -> None:
        self._drive(s, Dealer(DEALER, (0, 1), session_bytes(plan.run["id"], s.sid)).program())

    def _background(self, s: _Session, name: str, work: Callable[[], None]) -> None:
        def go() -> None:
            try:
                work()
            finally:
                self._drop(s)

        threading.Thread(target=go, daemon=True, name=name).start()

    # -- party 0 (the requester's node) ----------------------------------------------------------
    def run(self, run_id: str, requester: str, session: str | None = None) -> dict[str, Any]:
        """Run the joint statistics of ``run_id`` as party 0; answers the share commitments."""
        plan = self.plan(run_id)
        if plan.task["requester"] != requester:
            raise MpcRefused("NOT_REQUESTER", "only the task's requester drives its runs")
        if plan.orgs[0] != self.ctx.config.org:
            raise MpcRefused("NOT_A_PARTY", "drive an mpc run through the requester org's node", 409)
        authorize_task_input(self.ctx, plan.task, plan.inputs[0], "mpc")
        table, keys = self._aligned(plan, 0)
        plan = plan.with_rows(len(table))
        spec = plan.spec
        self._check_lr_rows(plan)
        self._check_min_rows(plan)
        sid = session or secrets.token_hex(16)
        self._claim(run_id, sid, "party", 0, plan.inputs[0]["dataset"])
        s = self._register_claimed(sid, run_id, 0, plan)
        try:
            self._open(plan, s, plan.dealer)
            self._open(plan, s, plan.orgs[1])
            try:
                share = self._party_program(plan, s, table, keys)
            except MpcError as exc:
                self._abort_peers(s, str(exc))
                raise MpcRefused("MPC_FAILED", f"the MPC run stopped: {exc}", 502) from None
            digest = hashlib.sha256(share).hexdigest()
            theirs = self._peer_digest(plan, s)
            digests = {plan.orgs[0]: digest, plan.orgs[1]: theirs}
            self.ctx.local.finish_mpc(
                run_id, "done", spec=plan.spec_record(), share=share, share_digest=digest
            )
            log.info("mpc run %s: party 0 done on %d rows", run_id[:16], spec.n_rows)
            return {
                "run": run_id,
                "session": sid,
                "rows": spec.n_rows,
                "spec": plan.spec_record(),
                "columns": plan.column_names(),
                "share_digests": digests,
                "output_digest": commitment(digests),
            }
        except MpcRefused as exc:
            self.ctx.local.finish_mpc(run_id, "failed", reason=f"{exc.code}: {exc.message}")
            raise
        finally:
            self._drop(s)

    def _open(self, plan: Plan, s: _Session, org: str) -> None:
        role = "dealer" if org == plan.dealer else "party"
        body = canonical_bytes(
            {
                "min_height": self.ctx.replica.height,
                "role": role,
                "rows": plan.spec.n_rows,
                "run": s.run,
                "session": s.sid,
            }
        )
        try:
            resp = self._post(org, "/v1/mpc/sessions", body, "application/json")
        except httpx.HTTPError as exc:
            self._abort_peers(s, f"{org}'s node failed: {exc}", skip=org)
            raise MpcRefused("PEER_UNREACHABLE", f"{org}'s node failed: {exc}", 502) from None
        if resp.status_code != 200:
            self._abort_peers(s, f"{org} refused")
            raise MpcRefused("PEER_REFUSED", f"{org}'s node ({role}) refused: {error_text(resp)}", 403)

    def _peer_digest(self, plan: Plan, s: _Session) -> str:
        """The partner's share digest (its node's record), once its side finished."""
        path = f"/v1/mpc/sessions/{s.sid}"
        deadline = time.monotonic() + IDLE_TIMEOUT_S
        while True:
            headers = sign_request(self.ctx.identity, "GET", path, "", b"")
            try:
                resp = self._http.get(self._peer_url(plan.orgs[1]) + path, headers=headers)
            except httpx.HTTPError as exc:
                raise MpcRefused("PEER_UNREACHABLE", f"{plan.orgs[1]}'s node failed: {exc}", 502) from None
            if resp.status_code != 200:
                raise MpcRefused("PEER_REFUSED", f"{plan.orgs[1]}'s node: {error_text(resp)}", 502)
            rec = resp.json()
            if rec["status"] == "done" and isinstance(rec.get("share_digest"), str):
                return str(rec["share_digest"])
            if rec["status"] != "running" or time.monotonic() > deadline:
                raise MpcRefused(
                    "PEER_FAILED", f"{plan.orgs[1]}'s side: {rec['status']} {rec.get('reason')}", 502
                )
            time.sleep(0.05)

    # -- party 1 and the dealer (asked by party 0's node) ----------------------------------------
    def join(self, run_id: str, session: str, role: str, rows: int, caller_key_id: str) -> dict[str, Any]:
        """All checks, then this node's side starts in the background."""
        plan = self.plan(run_id)
        caller = self.ctx.member(caller_key_id) or {}
        if "node" not in caller.get("roles", ()) or caller.get("org") != plan.orgs[0]:
            raise MpcRefused("NOT_REQUESTERS_NODE", "only the node of the task requester's org asks")
        me = self.ctx.config.org
        if role == "dealer":
            if me != plan.dealer:
                raise MpcRefused("NOT_THE_DEALER", f"the task names {plan.dealer!r} as dealer, not {me!r}")
            self._claim(run_id, session, "dealer", DEALER, None)
            s = self._register_claimed(session, run_id, DEALER, plan)

            def deal() -> None:
                try:
                    self._dealer_program(plan, s)
                    self.ctx.local.finish_mpc(run_id, "done")
                except BaseException as exc:
                    self.ctx.local.finish_mpc(run_id, "failed", reason=str(exc))
                    self._abort_peers(s, str(exc))
                    log.warning("mpc run %s: dealer stopped: %s", run_id[:16], exc)

            self._background(s, "mpc-dealer", deal)
            return {"session": session, "role": "dealer"}
        if me != plan.orgs[1]:
            raise MpcRefused("NOT_A_PARTY", f"org {me!r} holds no input of this task")
        authorize_task_input(self.ctx, plan.task, plan.inputs[1], "mpc")
        table, keys = self._aligned(plan, 1)
        if len(table) != rows:
            raise MpcRefused(
                "ROWS_DIFFER", f"the intersections differ: {len(table)} rows here, {rows} there", 409
            )
        plan = plan.with_rows(rows)
        self._check_lr_rows(plan)
        self._check_min_rows(plan)
        self._claim(run_id, session, "party", 1, plan.inputs[1]["dataset"])
        s = self._register_claimed(session, run_id, 1, plan)

        def compute() -> None:
            try:
                share = self._party_program(plan, s, table, keys)
                digest = hashlib.sha256(share).hexdigest()
                self.ctx.local.finish_mpc(
                    run_id, "done", spec=plan.spec_record(), share=share, share_digest=digest
                )
                log.info("mpc run %s: party 1 done", run_id[:16])
            except BaseException as exc:
                self.ctx.local.finish_mpc(run_id, "failed", reason=str(exc))
                self._abort_peers(s, str(exc))
                log.warning("mpc run %s: party 1 stopped: %s", run_id[:16], exc)

        self._background(s, "mpc-party", compute)
        return {"session": session, "role": "party"}

    # -- inbox, status, release ------------------------------------------------------------------
    def deliver(self, session: str, caller_key_id: str, message: bytes) -> None:
        """(Asked by a peer node.) Queue one protocol message for the session, or refuse."""
        with self._lock:
            s = self._sessions.get(session)
        if s is None:
            raise MpcRefused("UNKNOWN_SESSION", "no such MPC session on this node (it ended or expired)", 404)
        caller = self.ctx.member(caller_key_id) or {}
        party = s.peers.get(str(caller.get("org")))
        if "node" not in caller.get("roles", ()) or party is None:
            raise MpcRefused("NOT_THE_PEER", "only the session's peer nodes post messages to it")
        if len(message) > MAX_MESSAGE:  # before anything else: an ABORT is no exception
            s.inboxes[party].fail(MpcError(f"party {party} sent an oversized message"))
            raise MpcRefused("MESSAGE_TOO_LARGE", f"an MPC message is at most {MAX_MESSAGE} bytes", 413)
        if message.startswith(ABORT):
            reason = message[len(ABORT) : len(ABORT) + 400].decode(errors="replace")
            s.inboxes[party].fail(MpcAbortedError(f"party {party} aborted: {reason}"))
            return
        if not s.inboxes[party].put(message):
            raise MpcRefused("INBOX_FULL", "the MPC session's inbox is full; retry shortly", 429)

    def status(self, session: str, caller_key_id: str) -> dict[str, Any]:
        """(Asked by a peer node of the run.) This node's record of a session, without the share."""
        rec = self.ctx.local.mpc_run(session=session)
        caller = self.ctx.member(caller_key_id) or {}
        if rec is None:
            raise MpcRefused("UNKNOWN_SESSION", "no such MPC session on this node", 404)
        run = self.ctx.query(f"run/{rec['run']}")
        task = self.ctx.query(f"task/{run['task']}")
        if "node" not in caller.get("roles", ()) or caller.get("org") != task["requester_org"]:
            raise MpcRefused("NOT_REQUESTERS_NODE", "only the node of the task requester's org asks")
        return {k: rec[k] for k in ("run", "role", "party", "status", "share_digest", "reason")}

    def share(self, run_id: str, caller_key_id: str) -> dict[str, Any]:
        """This party's output share, once every owner approved the release: in the clear to the task's
        requester; to the node of the requester's org (collecting for a browser: ``results``) only
        encrypted to the recipient key the task names (``params.recipient``), so that node cannot
        open it (the same release box as a tee result, bound to the task and the share's digest)."""
        rec = self.ctx.local.mpc_run(run_id)
        run = self.ctx.query_or_none(f"run/{run_id}")
        task = None if run is None else self.ctx.query_or_none(f"task/{run['task']}")
        caller = self.ctx.member(caller_key_id) or {}
        relay = (
            task is not None
            and "node" in caller.get("roles", ())
            and caller.get("org") == task["requester_org"]
        )
        if (
            task is None
            or not (task["requester"] == caller_key_id or relay)
            or rec is None
            or rec["role"] != "party"
        ):
            raise MpcRefused("UNKNOWN_RUN", "no share of an mpc run of yours on this node", 404)
        recipient = task["params"].get("recipient")
        if relay and not isinstance(recipient, str):
            raise MpcRefused(
                "NO_RECIPIENT",
                "the task names no recipient key (params.recipient): fetch the shares yourself",
                409,
            )
        if rec["status"] != "done" or rec["share"] is None:
            raise MpcRefused("NO_SHARE", f"this node's side of the run is {rec['status']}", 409)
        rel = self.ctx.query_or_none(f"release/{run_id}")
        if rel is None or rel["status"] != "released":
            status = "no release record" if rel is None else rel["status"]
            approved = {} if rel is None else rel["decisions"]
            waiting = sorted(
                d for d in (rel or {}).get("required", []) if approved.get(d, {}).get("decision") != "approve"
            )
            raise MpcRefused(
                "NOT_RELEASED",
                f"the release of run {run_id[:16]} is {status}; not approved by the owners of: "
                f"{', '.join(waiting) or '(the run is not finished)'}",
                409,
            )
        out: dict[str, Any] = {}
        if rec["party"] == 0 and task["code_digest"] == MPC_LR_CODE_DIGEST:
            out["ids"] = self._scored_ids(run_id, task)
        share = bytes(rec["share"])
        if relay:
            assert isinstance(recipient, str)
            try:
                box = box_for_requester(
                    bytes.fromhex(recipient),
                    share,
                    task_id=task["id"],
                    output_digest=bytes.fromhex(rec["share_digest"]),
                )
            except ValueError:
                raise MpcRefused("BAD_RECIPIENT", "params.recipient is not an X25519 key", 409) from None
            out["box"] = box.hex()
        else:
            out["share"] = share.hex()
        return out | {
            "run": run_id,
            "org": self.ctx.config.org,
            "party": rec["party"],
            "session": session_bytes(run_id, rec["session"]).hex(),
            "spec": rec["spec"],
            "share_digest": rec["share_digest"],
        }

    def results(self, run_id: str, requester: str) -> dict[str, Any]:
        """For a browser: every party's share of the requester's released run, each encrypted to the
        task's recipient key (this node's own and the other party's, fetched with this node's key)."""
        run = self.ctx.query_or_none(f"run/{run_id}")
        task = None if run is None else self.ctx.query_or_none(f"task/{run['task']}")
        if task is None or task["requester"] != requester or task["engine"] != "mpc":
            raise MpcRefused("UNKNOWN_RUN", "no mpc run of yours on this node's ledger", 404)
        answers = []
        for inp in task["inputs"]:
            org = str(self.ctx.query(f"dataset/{inp['dataset']}")["org"])
            if org == self.ctx.config.org:
                answers.append(self.share(run_id, self.ctx.identity.key_id))
                continue
            body = canonical_bytes({"min_height": self.ctx.replica.height})
            try:
                resp = self._post(org, f"/v1/mpc/shares/{run_id}", body, "application/json")
            except httpx.HTTPError as exc:
                raise MpcRefused("PEER_UNREACHABLE", f"{org}'s node did not answer: {exc}", 502) from None
            if resp.status_code != 200:
                raise MpcRefused("PEER_REFUSED", f"{org}'s node refused its share: {error_text(resp)}", 409)
            answers.append(resp.json())
        return {"run": run_id, "task": task["id"], "output_digest": run["output_digest"], "parties": answers}

    def _check_lr_rows(self, plan: Plan) -> None:
        if plan.lr is None:
            return
        if not plan.lr.batch_size <= plan.lr.n_rows <= MAX_LR_ROWS:
            raise MpcRefused(
                "TOO_FEW_ROWS" if plan.lr.n_rows < plan.lr.batch_size else "TOO_MANY_ROWS",
                f"SS-LR needs between batch_size ({plan.lr.batch_size}) and {MAX_LR_ROWS} aligned rows, "
                f"the intersection has {plan.lr.n_rows}",
                409,
            )

    def _scored_ids(self, run_id: str, task: dict[str, Any]) -> list[str]:
        """(Party 0, SS-LR.) This org's own psi intersection, sorted: the order of the scores."""
        req_org = str(task["requester_org"])
        dataset = next((i["dataset"] for i in task["inputs"] if self._org_of(i["dataset"]) == req_org), None)
        psi = self.ctx.local.psi_runs(str(task["params"]["psi_run"]))
        rec = next((r for r in psi if r["dataset"] == dataset), None)
        if rec is None or rec["ids"] is None:
            raise MpcRefused("NO_INTERSECTION", f"run {run_id[:16]}: this node no longer holds its rows", 409)
        return sorted({unicodedata.normalize("NFC", str(i)) for i in rec["ids"]})

    def reap_cancelled(self) -> int:
        """Stop the sessions of runs cancelled (or failed) on this node's ledger view, and erase the
        output shares this node keeps for such runs: nothing of a stopped run stays behind."""
        with self._lock:
            live = list(self._sessions.values())
        stopped = 0
        for s in live:
            if status := self.ctx.stopped_run(s.run):
                for inbox in s.inboxes.values():
                    inbox.fail(MpcAbortedError(f"the run was {status} on the ledger"))
                stopped += 1
        for run_id in self.ctx.local.mpc_runs_holding_shares():
            if status := self.ctx.stopped_run(run_id):
                self.ctx.local.finish_mpc(run_id, status, reason=f"the run was {status}: share erased")
                stopped += 1
        return stopped

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for s in sessions:
            for inbox in s.inboxes.values():
                inbox.fail(None)
        self._http.close()


def _standardize(table: np.ndarray) -> np.ndarray:
    """A party's own feature columns to mean 0, std 1 (on its aligned rows, locally; never shared)."""
    mean = table.mean(axis=0) if len(table) else np.zeros(table.shape[1])
    std = table.std(axis=0) if len(table) else np.ones(table.shape[1])
    out: np.ndarray = (table - mean) / np.where(std > 0, std, 1.0)
    return out


def _lr_scores(
    ctx: PartyContext, spec: LrSpec, features: np.ndarray, labels: np.ndarray | None
) -> Generator[Round, Inbound, list[Ring]]:
    """SS-LR, then the shared scores ``[X_0 | X_1 | 1] w`` of every aligned row; the weights stay shares.

    The scoring triple is dealt first (``train_ss`` tells the dealer it is done when it returns), and
    the features are shared a second time (fresh seeds) for the scoring product."""
    n, k = spec.n_rows, spec.n_weights
    (t_score,) = yield from ctx.dealer([Spec.matmul(n, k, 1)])
    assert isinstance(t_score, MatTriple)
    kme = spec.k_0 if ctx.party == 0 else spec.k_1
    shared = yield from ctx.inputs([fp.encode(features)], {0: [(n, spec.k_0)], 1: [(n, spec.k_1)]})
    x = np.hstack([shared[0][0], shared[1][0], ctx.public(fp.encode(np.ones((n, 1))))])
    assert features.shape == (n, kme)
    w = yield from train_ss(ctx, spec, features, labels)
    u = yield from ctx.matmul(x, w.reshape(k, 1), t_score)
    (scores,) = yield from ctx.truncate([u.reshape(n)], ctx.frac_bits)
    return [scores]
