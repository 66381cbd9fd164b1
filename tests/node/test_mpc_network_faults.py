"""Faults in an MPC run between org nodes (separate processes, https): bank, partner "power", dealer "tax".

A peer that posts malformed or oversized messages, or whose node dies mid-protocol: the requester gets
a clear error (never a hang), the run is failed on the ledger, no node keeps a share of it, and the
other nodes stop too. The network, the datasets, the grants and the psi run are the ones of
``test_mpc_network`` (its module fixtures, a fresh network for this module). The partner is frozen
(SIGSTOP) where a test needs to decide what reaches a node first, and killed with SIGKILL; the tests
that kill it restart it afterwards.
"""

from __future__ import annotations

import contextlib
import secrets
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import test_mpc_network as base
from netfixture import Network

from confide.crypto import load_identity
from confide.crypto.httpsig import sign_request
from confide.engines.mpc.wire import Header, Tag, encode_message
from confide.interfaces.client import ApiCallError
from confide.interfaces.mpc import MpcRunFailed, run_mpc_task, submit_mpc_task
from confide.node.mpc.sessions import IDLE_TIMEOUT_S, MAX_MESSAGE

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]
net, world = base.net, base.world  # the mpc network module's fixtures (instantiated for this module)
FROM_PARTNER = b"CMPC\x01\x01\x01"  # magic, version, dtype, sender = party 1: a message of the partner's


def _task(net: Network, w: dict[str, Any]) -> str:
    task = submit_mpc_task(
        w["analyst"],
        mine=(base.CUSTOMERS, w["grants"][base.CUSTOMERS], base.BANK_COLS),
        theirs=(base.SUBSCRIBERS, w["grants"][base.SUBSCRIBERS], base.PARTNER_COLS),
        psi_run=w["psi_run"],
        dealer="tax",
    )
    net.sync()
    return task


def _row(net: Network, org: str, session: str) -> dict[str, Any] | None:
    """The org node's own record (``node_mpc_runs``) of the mpc session, read off its disk."""
    con = sqlite3.connect(net.root / org / "node.sqlite")
    con.row_factory = sqlite3.Row
    try:
        r = con.execute("SELECT * FROM node_mpc_runs WHERE session = ?", (session,)).fetchone()
        return None if r is None else dict(r)
    finally:
        con.close()


def _eventually(check: Callable[[], Any], timeout_s: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (got := check()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return got


def _stopped(net: Network, org: str, session: str, timeout_s: float = 6.0) -> dict[str, Any] | None:
    """The org's record once it left ``running`` (or its last record after ``timeout_s``)."""
    _eventually(lambda: (r := _row(net, org, session)) is not None and r["status"] != "running", timeout_s)
    return _row(net, org, session)


def _post_as_node(
    http: httpx.Client, net: Network, signer: str, target: str, path: str, body: bytes
) -> httpx.Response:
    """A message signed with ``signer``'s node key (what that peer node's link sends)."""
    key = load_identity(net.root / signer / "keys" / "node.pem")
    headers = sign_request(key, "POST", path, "", body) | {"Content-Type": "application/octet-stream"}
    return http.post(net.url(target) + path, content=body, headers=headers)


@contextlib.contextmanager
def _frozen(net: Network, org: str) -> Iterator[Callable[[], None]]:
    """SIGSTOP ``org``'s node; yields ``thaw`` (SIGCONT), which also runs on exit."""
    proc = net.procs[org]
    proc.send_signal(signal.SIGSTOP)
    thawed = threading.Event()

    def thaw() -> None:
        if not thawed.is_set() and proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
        thawed.set()

    try:
        yield thaw
    finally:
        thaw()


@contextlib.contextmanager
def _restarts(net: Network, org: str) -> Iterator[None]:
    """Whatever the test does to ``org``'s node, it runs again (and caught up) afterwards."""
    try:
        yield
    finally:
        if org not in net.procs:
            net.start(org)
        net.sync()


def _assert_failed_everywhere(net: Network, w: dict[str, Any], run: str, session: str, why: str) -> None:
    """The run is failed on the ledger, and no node holds a share of it (each node stopped its side)."""
    rec = w["analyst"].query(f"run/{run}")
    assert rec["status"] == "failed" and why in rec["reason"], rec
    mine = _row(net, "bank", session)
    assert mine is not None and mine["run"] == run and mine["status"] == "failed", mine
    assert mine["share"] is None and mine["share_digest"] is None and why in mine["reason"]
    with pytest.raises(ApiCallError) as refused:  # nothing to hand out, even once released
        w["at"]["bank"].call("POST", f"/v1/mpc/shares/{run}", {"min_height": -1})
    assert refused.value.code == "NO_SHARE" and "failed" in refused.value.message
    dealer = _stopped(net, "tax", session)
    assert dealer is not None and dealer["status"] == "failed" and dealer["share"] is None, dealer


def _assert_partner_stopped(net: Network, session: str) -> None:
    """The partner's node stopped its side, without a share. Its inbox queues the bank's ABORT behind the
    bank's last protocol message, so it stops either on that ABORT or, one round later, on the bank's
    refusal of its next message (the bank's session is gone): both within a few seconds."""
    partner = _stopped(net, "power", session)
    assert partner is not None and partner["status"] == "failed" and partner["share"] is None, partner
    assert "party 0 aborted" in partner["reason"] or "UNKNOWN_SESSION" in partner["reason"], partner


GARBAGE = b"\x00garbage, not an MPC message: a whole header's worth of bytes"  # >= 40: past the length check
TRUNCATED = encode_message(Header(1, 0, bytes(16), 0, Tag.INPUT), [np.arange(4, dtype=np.uint64)])[:24]


def _fail_with_partner_frozen(
    net: Network, w: dict[str, Any], task: str, session: str, inject: Callable[[Callable[[], None]], None]
) -> tuple[MpcRunFailed, float]:
    """Run ``task`` with the partner's node frozen until ``inject(thaw)`` thaws it; the run must fail.
    Returns the failure and how long the run took."""
    started = time.monotonic()
    with _frozen(net, "power") as thaw:
        th = threading.Thread(target=inject, args=(thaw,), daemon=True)
        th.start()
        try:
            with pytest.raises(MpcRunFailed) as failed:
                run_mpc_task(w["analyst"], task, session=session)
        finally:
            th.join(60)
    return failed.value, time.monotonic() - started


@pytest.mark.parametrize(
    ("body", "expect"),
    [(GARBAGE, "bad magic"), (TRUNCATED, "truncated header (24 < 40 bytes)")],
    ids=["garbage", "truncated-header"],
)
def test_a_malformed_message_from_the_partner_aborts_the_run_on_every_node(
    net: Network, world: dict[str, Any], body: bytes, expect: str
) -> None:
    w = world
    task = _task(net, w)
    session = secrets.token_hex(16)
    path = f"/v1/mpc/sessions/{session}/messages"
    answers: list[int] = []

    def inject(thaw: Callable[[], None]) -> None:  # with the partner's node key, once the session exists
        with httpx.Client(verify=net.verify(), timeout=10) as http:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                code = _post_as_node(http, net, "power", "bank", path, body).status_code
                if code != 404:  # 404: the bank's node has not opened the session yet
                    answers.append(code)
                    break
                time.sleep(0.005)
        thaw()

    # the partner's node stays frozen until the injected message is in the bank's inbox, so none of its
    # real messages can get there first (the bank's node waits for its answer to the join meanwhile)
    failed, elapsed = _fail_with_partner_frozen(net, w, task, session, inject)
    assert answers == [202]  # the bank's node took the bytes (they are signed by its peer) ...
    run = failed.run  # ... and its engine refused them: a clear error, soon
    assert failed.code == "MPC_FAILED" and "party 1" in failed.message, failed
    assert expect in failed.message
    assert elapsed < 20
    _assert_failed_everywhere(net, w, run, session, expect)
    _assert_partner_stopped(net, session)


@pytest.mark.parametrize(
    "prefix",
    [
        b"",
        b"ABORT:",  # an abort is no exception to the size limit
    ],
    ids=["protocol-bytes", "abort"],
)
def test_an_oversized_message_is_refused_with_413_and_aborts_the_run(
    net: Network, world: dict[str, Any], prefix: bytes
) -> None:
    w = world
    task = _task(net, w)
    session = secrets.token_hex(16)
    path = f"/v1/mpc/sessions/{session}/messages"
    answers: list[httpx.Response] = []
    body = prefix + b"x" * (MAX_MESSAGE + 1 - len(prefix))

    def inject(thaw: Callable[[], None]) -> None:
        _eventually(lambda: _row(net, "bank", session), 30)  # claimed; the session opens right after
        with httpx.Client(verify=net.verify(), timeout=60) as http:
            for _ in range(20):
                resp = _post_as_node(http, net, "power", "bank", path, body)
                if resp.status_code != 404:
                    answers.append(resp)
                    break
                time.sleep(0.05)
        thaw()

    failed, elapsed = _fail_with_partner_frozen(net, w, task, session, inject)
    assert len(answers) == 1 and answers[0].status_code == 413, answers
    assert answers[0].json()["error"]["code"] == "MESSAGE_TOO_LARGE"
    assert failed.code == "MPC_FAILED" and "oversized" in failed.message, failed
    assert elapsed < 30
    _assert_failed_everywhere(net, w, failed.run, session, "oversized")
    _assert_partner_stopped(net, session)


def test_a_partner_killed_mid_protocol_fails_the_run_fast_naming_it(
    net: Network, world: dict[str, Any]
) -> None:
    w = world
    task = _task(net, w)
    session = secrets.token_hex(16)
    wire = net.root.parent / "wire.bin"  # every inbox appends what it accepts (CONFIDE_PSI_WIRE_LOG)
    offset = wire.stat().st_size
    seen: dict[str, Any] = {}

    def kill_once_the_partner_talks() -> None:
        """SIGKILL the partner's node as soon as a peer's inbox accepted its first protocol message (its
        request to the dealer, sent before it can get anything back): it is mid-protocol."""
        deadline, tail = time.monotonic() + 30, b""
        with wire.open("rb") as fh:
            fh.seek(offset)
            while time.monotonic() < deadline:
                tail = tail[-8:] + fh.read()
                if FROM_PARTNER in tail:
                    seen["at"] = time.monotonic()
                    net.kill("power")  # SIGKILL
                    return
                time.sleep(0.001)

    with _restarts(net, "power"):
        th = threading.Thread(target=kill_once_the_partner_talks, daemon=True)
        th.start()
        try:
            with pytest.raises(MpcRunFailed) as failed:
                run_mpc_task(w["analyst"], task, session=session)
        finally:
            th.join(40)
        failed_at = time.monotonic()
        assert "at" in seen, "the partner never sent a protocol message"
        partner = _row(net, "power", session)  # it joined, and died before recording an outcome
        assert partner is not None and partner["status"] == "running" and partner["share"] is None, partner

        # the next send to the dead node fails at once: no wait for the idle timeout
        assert failed_at - seen["at"] < IDLE_TIMEOUT_S / 4
        assert failed.value.code == "MPC_FAILED", failed.value
        assert "power's node is unreachable" in failed.value.message, failed.value
        _assert_failed_everywhere(net, w, failed.value.run, session, "power")
        dealer = _row(net, "tax", session)
        assert dealer is not None and "power" in dealer["reason"], dealer  # it stopped, naming the partner


def test_a_partner_killed_while_asked_to_join_stops_the_dealer_too(
    net: Network, world: dict[str, Any]
) -> None:
    w = world
    task = _task(net, w)
    session = secrets.token_hex(16)

    def kill_once_the_dealer_joined() -> None:
        if _eventually(lambda: _row(net, "tax", session), 30):
            net.kill("power")  # SIGKILL, while frozen: the bank's join request to it fails

    with _restarts(net, "power"):
        with _frozen(net, "power"):
            th = threading.Thread(target=kill_once_the_dealer_joined, daemon=True)
            th.start()
            started = time.monotonic()
            try:
                with pytest.raises(MpcRunFailed) as failed:
                    run_mpc_task(w["analyst"], task, session=session)
            finally:
                th.join(40)
        assert time.monotonic() - started < 15
        assert failed.value.code == "PEER_UNREACHABLE" and "power's node failed" in failed.value.message
        assert _row(net, "power", session) is None  # it never joined
        _assert_failed_everywhere(net, w, failed.value.run, session, "power")  # the dealer was told
