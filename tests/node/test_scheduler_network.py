"""The scheduler and notifications between real org nodes.

- A cron task's two consecutive slots, with the partner's grant revoked between them: the first
  runs, the second fails ``REVOKED`` and starts no run. The bank's node reads its scheduler's time
  from a file the test moves (``CONFIDE_SCHEDULER_CLOCK_FILE``: an injected clock across processes,
  no waiting for real minutes); the ledger still judges each ``run.start`` by its block time.
- Webhooks for a run started by hand: the requester's node hears it started and awaits release,
  each owner's node hears its decision is needed, both hear the release — signed by the node key.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from netfixture import Network, grant, owners_and_datasets, start_network

from confide.crypto import load_identity
from confide.crypto.httpsig import verify_request
from confide.interfaces import sdk
from confide.interfaces.psi import run_psi_task, submit_psi_task
from confide.interfaces.tasks import task_slots

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
CUSTOMERS, SUBSCRIBERS = "bank/retail/customers", "power/mobile/subscribers"
MINUTE = 60_000


class Receiver:
    """A webhook receiver: every POST, by path, with its headers and JSON body."""

    def __init__(self) -> None:
        got: list[tuple[str, dict[str, str], bytes]] = []

        class Hook(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                got.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.got = got
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def events(self, path: str, match: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        return [e for p, _, b in list(self.got) if p == path and match(e := json.loads(b))]


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    n = start_network(tmp_path_factory.mktemp("sched-net") / "consortium")
    yield n
    n.stop_all()


def _restart(net: Network, org: str, monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    net.kill(org, 15)
    with monkeypatch.context() as m:
        for k, v in env.items():
            m.setenv(k, v)
        net.start(org)


@pytest.fixture(scope="module")
def world(net: Network) -> Iterator[dict[str, Any]]:
    (net.root / "bank" / "data" / "customers.csv").write_text(
        "phone\n" + "\n".join(f"+86138{i:08d}" for i in range(200)) + "\n"
    )
    (net.root / "power" / "data" / "subscribers.csv").write_text(
        "phone\n" + "\n".join(f"+86138{i:08d}" for i in range(100, 300)) + "\n"
    )
    owners, analyst = owners_and_datasets(
        net, (("bank", "retail", "customers", {}), ("power", "mobile", "subscribers", {}))
    )
    hooks = Receiver()
    clock_file = net.root.parent / "bank-clock"
    _set_clock(clock_file, int(time.time() * 1000))
    mp = pytest.MonkeyPatch()
    for org in ("bank", "power"):  # webhooks in node.json; the bank's scheduler on the test's clock
        cfg = json.loads((net.root / org / "node.json").read_text())
        cfg["webhooks"] = [f"{hooks.url}/{org}"]
        (net.root / org / "node.json").write_text(json.dumps(cfg))
        env = {"CONFIDE_SCHEDULER_CLOCK_FILE": str(clock_file)} if org == "bank" else {}
        _restart(net, org, mp, **env)
    net.sync()
    yield {"analyst": analyst, "owners": owners, "hooks": hooks, "clock": clock_file}
    hooks.server.shutdown()


def _set_clock(path: Path, ms: int) -> None:
    """Move the bank node's scheduler clock (written whole, then renamed: never read half-written)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(str(ms))
    tmp.replace(path)


def _grant(w: dict[str, Any], dataset: str) -> str:
    owner = w["owners"][dataset.split("/")[0]]
    return grant(w["analyst"], owner, dataset, columns=["phone"], engines=["psi"], purpose="overlap count")


def _wait(what: Callable[[], Any], timeout: float = 40.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (got := what()):
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.2)
    return got


def test_a_grant_revoked_between_two_cron_runs_stops_the_second(net: Network, world: dict[str, Any]) -> None:
    analyst, clock = world["analyst"], world["clock"]
    partner_grant = _grant(world, SUBSCRIBERS)
    task = sdk.submit_task(
        analyst.ledger,
        analyst.identity,
        engine="psi",
        inputs=[
            {"dataset": CUSTOMERS, "grant": _grant(world, CUSTOMERS), "columns": ["phone"]},
            {"dataset": SUBSCRIBERS, "grant": partner_grant, "columns": ["phone"]},
        ],
        code_digest=hashlib.sha256(b"ecdh-psi-x25519/v1").hexdigest(),
        schedule={"kind": "cron", "cron": "* * * * *", "tz": "Asia/Shanghai"},
    ).tx_id
    net.sync()
    submitted = int(analyst.query(f"task/{task}")["submitted_at"])
    first = submitted - submitted % MINUTE + MINUTE
    slots = lambda: analyst.call("GET", f"/v1/scheduler/tasks/{task}/slots")["slots"]  # noqa: E731

    _set_clock(clock, first + 1_000)  # the bank's scheduler: the first slot is due
    (one,) = _wait(lambda: [s for s in slots() if s["state"] in ("done", "failed")])
    assert one["slot"] == first and one["state"] == "done", one
    partner = world["owners"]["power"]
    sdk.revoke(partner.ledger, partner.identity, partner_grant, "contract ended")
    net.sync()

    _set_clock(clock, first + MINUTE + 1_000)  # a minute later: the second slot
    _wait(lambda: len([s for s in slots() if s["state"] in ("done", "failed")]) == 2)
    _set_clock(clock, first + MINUTE + 2_000)
    one, two = slots()[:2]
    assert two["slot"] == first + MINUTE and two["state"] == "failed" and "REVOKED" in two["error"], two
    assert two["run"] is None
    net.sync()
    assert analyst.query(f"task/{task}")["runs"] == [one["run"]]  # one run: the second never started
    assert [r["state"] for r in task_slots(analyst, task)[:2]] == ["awaiting release", "failed"]
    sdk.send(analyst.ledger, analyst.identity, "task.cancel", {"task": task})


def test_webhooks_tell_requester_and_owners_about_a_hand_started_run(
    net: Network, world: dict[str, Any]
) -> None:
    analyst, hooks = world["analyst"], world["hooks"]
    task = submit_psi_task(
        analyst,
        mine=(CUSTOMERS, _grant(world, CUSTOMERS), "phone"),
        theirs=(SUBSCRIBERS, _grant(world, SUBSCRIBERS), "phone"),
    )
    net.sync()
    run = run_psi_task(analyst, task)["run"]
    ofrun = lambda e: e.get("run") == run  # noqa: E731
    bank = _wait(lambda: len(hooks.events("/bank", ofrun)) >= 3 and hooks.events("/bank", ofrun))
    assert [e["event"] for e in bank] == ["run.started", "run.awaiting_release", "release.decision_needed"]
    assert bank[2]["dataset"] == CUSTOMERS  # the bank owns an input too
    (power,) = _wait(lambda: hooks.events("/power", ofrun))
    assert power["event"] == "release.decision_needed" and power["dataset"] == SUBSCRIBERS
    for dataset in (CUSTOMERS, SUBSCRIBERS):
        owner = world["owners"][dataset.split("/")[0]]
        sdk.decide_release(owner.ledger, owner.identity, run, dataset)
    for org in ("bank", "power"):
        done = _wait(
            lambda o=org: hooks.events(f"/{o}", lambda e: ofrun(e) and e["event"] == "release.released")
        )
        assert len(done) == 1
    # each POST is signed by its node's key
    keys = {o: load_identity(net.root / o / "keys" / "node.pem") for o in ("bank", "power")}

    class Nonces:
        def check_and_add(self, nonce: str, now: int) -> bool:
            return True

    for path, headers, body in list(hooks.got):
        org = path.strip("/")
        signed = verify_request(
            headers,
            "POST",
            path,
            "",
            body,
            lookup_key=lambda k, o=org: keys[o].public_key if k == keys[o].key_id else None,
            nonces=Nonces(),
        )
        assert signed.key_id == keys[org].key_id


def test_nothing_is_heard_twice_after_a_restart(net: Network, world: dict[str, Any]) -> None:
    """The webhook cursor and outbox live in the node's database: a restart neither repeats nor drops."""
    hooks = world["hooks"]
    before = len(hooks.got)
    _restart(net, "power", pytest.MonkeyPatch())
    net.sync()
    time.sleep(2.0)
    assert len(hooks.got) == before
    ids = [json.loads(b)["id"] + p for p, _, b in hooks.got]
    assert len(ids) == len(set(ids))
