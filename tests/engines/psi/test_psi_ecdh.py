"""ECDH-PSI: correctness on sets with known intersections, output modes, hostile peers."""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Sequence

import pytest
from _psi_sets import nfc_sorted, psi, random_sets
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from confide.engines.psi import wire
from confide.engines.psi._work import mask_ids, remask_points
from confide.engines.psi.ecdh import EcdhPsi, canonical_ids, session_dst
from confide.engines.psi.h2c import encode_to_curve_u
from confide.engines.psi.interface import PsiConfig, PsiPeerAborted, PsiProtocolError, PsiResult
from confide.engines.psi.local import QueueTransport, run_pair, transport_pair


@pytest.fixture(scope="module")
def engine(ecdh: EcdhPsi) -> EcdhPsi:
    return ecdh


def test_bad_ids_rejected(engine: EcdhPsi) -> None:
    with pytest.raises(ValueError, match="position 1"):
        canonical_ids(["ok", "bad\ud800"])
    with pytest.raises(TypeError, match="position 0"):
        canonical_ids([b"raw"])  # type: ignore[list-item]


def test_masking_commutes_and_is_randomized() -> None:
    """Real crypto: clamp(a)·clamp(b)·Q from both sides agree; a fresh key gives other values."""
    dst = session_dst("kat")
    ids = [b"alice", b"bob"]
    ka, kb = secrets.token_bytes(32), secrets.token_bytes(32)
    ab = remask_points(kb, mask_ids(ka, dst, ids), 32)
    ba = remask_points(ka, mask_ids(kb, dst, ids), 32)
    assert ab == ba
    q = encode_to_curve_u(b"alice", dst)
    direct = X25519PrivateKey.from_private_bytes(ka).exchange(X25519PublicKey.from_public_bytes(q))
    assert mask_ids(ka, dst, [b"alice"]) == direct
    assert mask_ids(secrets.token_bytes(32), dst, ids) != mask_ids(ka, dst, ids)
    assert session_dst("kat") != session_dst("kat2")


def test_determinism_aside_from_shuffle(engine: EcdhPsi) -> None:
    a, b, shared = random_sets(random.Random(3), 120, 80, 33)
    results = {tuple(psi(engine, a, b, batch=16)[0].intersection or []) for _ in range(2)}
    results.add(tuple(psi(engine, list(reversed(a)), b, batch=50)[0].intersection or []))
    assert results == {tuple(nfc_sorted(shared))}


def test_messages_are_shuffled(engine: EcdhPsi) -> None:
    """The same set sent twice: the MASKED order differs (fresh key and fresh permutation)."""
    ids = [str(i) for i in range(64)]
    firsts = []
    for _ in range(2):
        ta, tb = transport_pair()
        tb.sent = []
        _run_with(engine, ids, ids, ta, tb)
        firsts.append(next(m for m in tb.sent if m[5] == wire.MASKED))
    assert firsts[0] != firsts[1]


def test_shuffle_is_a_fresh_permutation() -> None:
    from confide.engines.psi.ecdh import _shuffle

    perms = [_shuffle(1000).tolist() for _ in range(3)]
    assert all(sorted(p) == list(range(1000)) for p in perms)
    assert len({tuple(p) for p in perms}) == 3
    assert _shuffle(0).tolist() == []


def _run_with(
    engine: EcdhPsi, a: Sequence[str], b: Sequence[str], ta: QueueTransport, tb: QueueTransport
) -> tuple[PsiResult, PsiResult]:
    cfgs = (PsiConfig("t-1", "receiver", batch_size=16), PsiConfig("t-1", "sender", batch_size=16))
    return run_pair((engine, engine), (a, b), cfgs, transports=(ta, tb))


# -- a hostile or broken peer ------------------------------------------------------------------------


class FakePeer:
    """Drives the other end by hand: ``script`` maps the honest party's hello to what we send."""

    def __init__(self, transport: QueueTransport) -> None:
        self.t = transport

    def hello(self, n: int, session: str = "t-1", role: str = "sender", batch: int = 16) -> bytes:
        import hashlib

        from confide.engines.psi.ecdh import CONTEXT_LABEL

        ctx = hashlib.sha256(CONTEXT_LABEL + session_dst(session)).digest()
        return wire.encode_hello(wire.Hello(role, "receiver", n, batch, ctx))  # type: ignore[arg-type]


def _honest_receiver_vs(
    engine: EcdhPsi, messages: list[bytes], close: bool = False, timeout: float = 5.0
) -> Exception:
    ta, tb = transport_pair()
    for m in messages:
        tb.send(m)
    if close:
        tb.close()
    cfg = PsiConfig("t-1", "receiver", batch_size=16, idle_timeout=timeout)
    start = time.monotonic()
    with pytest.raises(PsiProtocolError) as info:
        engine.run(["a", "b", "c"], ta, cfg)
    assert time.monotonic() - start < timeout + 3
    # The honest party told the peer why it stopped.
    sent = []
    while True:
        try:
            sent.append(tb.recv(0.01))
        except (TimeoutError, EOFError):
            break
    assert any(m[5] == wire.ABORT for m in sent)
    return info.value


def _points(k: int) -> bytes:
    return b"".join(X25519PrivateKey.generate().public_key().public_bytes_raw() for _ in range(k))


@pytest.mark.parametrize(
    ("messages", "match"),
    [
        ([b"junk"], "truncated message"),
        ([b"XXXX" + bytes(60)], "bad magic"),
        ([wire.HEADER.pack(b"CPSI", 9, 1, 0, 0)], "version"),
        ([wire.encode(wire.HELLO, 0, 0, bytes(10))], "malformed hello"),
        ([wire.encode(7, 0, 0, b"")], "unknown PSI message type"),
        (["HELLO2", wire.encode(wire.MASKED, 0, 2, _points(2)[:40])], "truncated or padded"),
        (["HELLO2", wire.encode(wire.MASKED, 1, 2, _points(2))], "unexpected masked batch 1"),
        (["HELLO2", wire.encode(wire.MASKED, 0, 17, _points(17))], "outside 1..16"),
        (["HELLO2", wire.encode(wire.MASKED, 0, 2, _points(1) + bytes(32))], "low-order"),
        (["HELLO2", wire.encode(wire.MASKED, 0, 2, _points(1) + b"\xff" * 32)], "non-canonical"),
        (["HELLO2", wire.encode(wire.DOUBLE, 0, 99, bytes(99 * 16))], "outside 1..16"),
        (["HELLO2", wire.encode(wire.DOUBLE, 0, 4, bytes(64))], "unexpected double-masked"),
        (["HELLO2", wire.encode(wire.HELLO, 0, 0, bytes(46))], "unexpected message type 1"),
        (["HELLO2", wire.encode(wire.ABORT, 0, 0, b"grant revoked")], "aborted: grant revoked"),
        ([wire.encode(wire.MASKED, 0, 1, _points(1))], "expected hello"),
    ],
    ids=[
        "short",
        "magic",
        "version",
        "hello-size",
        "type",
        "truncated-batch",
        "seq-gap",
        "oversized-batch",
        "low-order",
        "non-canonical",
        "double-oversized",
        "double-too-many",
        "hello-twice",
        "abort",
        "no-hello",
    ],
)
def test_malformed_peer_messages(engine: EcdhPsi, messages: list[bytes | str], match: str) -> None:
    peer = FakePeer(transport_pair()[0])
    msgs = [peer.hello(2) if m == "HELLO2" else m for m in messages]
    if any(m[5] == wire.ABORT for m in msgs if isinstance(m, bytes) and len(m) > 5):
        ta, tb = transport_pair()
        for m in msgs:
            tb.send(m)  # type: ignore[arg-type]
        with pytest.raises(PsiPeerAborted, match=match):
            engine.run(["a"], ta, PsiConfig("t-1", "receiver", batch_size=16, idle_timeout=5))
        return
    err = _honest_receiver_vs(engine, msgs)  # type: ignore[arg-type]
    assert match in str(err)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"session": "other"}, "another session"),
        ({"role": "receiver"}, "both parties claim"),
        ({"batch": 32}, "batch bound differs"),
    ],
)
def test_hello_mismatch(engine: EcdhPsi, kwargs: dict[str, object], match: str) -> None:
    peer = FakePeer(transport_pair()[0])
    err = _honest_receiver_vs(engine, [peer.hello(2, **kwargs)])  # type: ignore[arg-type]
    assert match in str(err)


def test_peer_goes_silent_or_closes(engine: EcdhPsi) -> None:
    peer = FakePeer(transport_pair()[0])
    # Announces 40 items, sends one batch of 16, then nothing.
    silent = [peer.hello(40), wire.encode(wire.MASKED, 0, 16, _points(16))]
    err = _honest_receiver_vs(engine, silent, timeout=1.0)
    assert "no message from the PSI peer" in str(err)
    err = _honest_receiver_vs(engine, silent, close=True)
    assert "closed the link" in str(err)


def test_error_in_one_party_stops_the_other(engine: EcdhPsi) -> None:
    cfgs = (PsiConfig("t-1", "receiver"), PsiConfig("t-2", "sender"))
    with pytest.raises(PsiProtocolError):
        run_pair((engine, engine), (["a"], ["a"]), cfgs)


def test_pool_workers_exit_when_the_process_that_made_them_is_killed() -> None:
    """A node SIGKILLed mid-run must not leave its ECDH workers behind (holding memory and cores)."""
    import os
    import subprocess
    import sys
    import time

    script = (
        "import multiprocessing as mp, os, signal\n"
        "from confide.engines.psi.ecdh import new_pool\n"
        "if __name__ == '__main__':\n"
        "    pool = new_pool(2)\n"
        "    list(pool.map(abs, range(8)))\n"
        "    print(' '.join(str(p.pid) for p in mp.active_children()), flush=True)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == -9, out.stderr
    pids = [int(p) for p in out.stdout.split()]
    assert len(pids) == 2  # the pool's workers

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        try:
            with open(f"/proc/{pid}/stat") as f:  # a zombie waiting for init to reap it is gone too
                return f.read().split(") ")[1][0] != "Z"
        except FileNotFoundError:
            return False

    deadline = time.monotonic() + 10
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in pids if alive(p)]
