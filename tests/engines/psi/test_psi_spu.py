"""SecretFlow SPU behind Confide's PSI interface: the ID encoding, the missing-venv error, and a peer
that breaks the tunnel protocol, goes silent, closes the link or loses its SPU process mid-run
(the honest side stops with a clear error, kills its worker and leaves no file behind)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from confide.engines.psi.interface import PsiConfig, PsiError, PsiPeerAborted, PsiProtocolError
from confide.engines.psi.local import QueueTransport, run_pair, transport_pair
from confide.engines.psi.spu import SpuPsi, SpuUnavailable, SpuWorker, SpuWorkers, decode_sorted, encode_ids
from confide.engines.psi.tunnel import CHUNK


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[SpuWorkers]:
    w = SpuWorkers(spares=1, tmp_root=tmp_path)
    try:
        yield w
    finally:
        w.close()


def test_id_encoding_known_answers() -> None:
    ids = pa.array(["+86 13800000000", "~x", "a\nb", "", "tab\t", "é"])
    assert encode_ids(ids).to_pylist() == ["+86 13800000000", "~7e78", "~610a62", "", "~74616209", "é"]
    assert decode_sorted(encode_ids(ids)) == sorted(ids.to_pylist())
    plain = pa.array(["b", "a"])
    assert encode_ids(plain) is plain  # nothing to encode: the array itself


def test_a_missing_spu_venv_says_how_to_make_it(tmp_path: Path) -> None:
    with pytest.raises(SpuUnavailable, match="make spu-env"):
        SpuWorker(tmp_path / "no-such-venv" / "bin" / "python")


def _hello(session: str = "t-1", role: str = "sender", engine: str = "spu-rr22") -> bytes:
    return (
        b"H"
        + json.dumps(
            {"v": 1, "engine": engine, "session": session, "role": role, "output": "receiver", "empty": False}
        ).encode()
    )


def _honest_receiver_vs(
    workers: SpuWorkers, tmp_path: Path, frames: list[bytes], close: bool = False, timeout: float = 5.0
) -> Exception:
    ta, tb = transport_pair()
    for f in frames:
        tb.send(f)
    if close:
        tb.close()
    cfg = PsiConfig("t-1", "receiver", idle_timeout=timeout)
    start = time.monotonic()
    with pytest.raises(PsiError) as info:
        SpuPsi("spu-rr22", workers).run([f"id{i}" for i in range(100)], ta, cfg)
    assert time.monotonic() - start < timeout + 10
    assert not list(tmp_path.rglob("*.csv")), "the run's files must be gone"
    return info.value


@pytest.mark.parametrize(
    ("frames", "match"),
    [
        ([b"junk"], "malformed hello"),
        ([b"H" + b"x" * 5000], "malformed hello"),
        ([_hello(session="other")], "session"),
        ([_hello(role="receiver")], "both parties claim"),
        ([_hello(engine="spu-kkrt")], "engine"),
        ([_hello(), b"Z\x00\x00\x00\x01"], "malformed tunnel frame"),
        ([_hello(), b"D\x00\x00\x00\x07data"], "unknown connection 7"),
        ([_hello(), b"O\x00\x00\x00\x02"], "not its to open"),
        ([_hello(), b"O\x00\x00\x00\x01", b"D\x00\x00\x00\x01" + bytes(CHUNK + 1)], "oversized"),
        ([_hello(), b"E{not json"], "malformed E frame"),
        ([_hello(), b"A" + json.dumps({"reason": "grant revoked"}).encode()], "aborted: grant revoked"),
    ],
    ids=[
        "junk",
        "huge-hello",
        "session",
        "role",
        "engine",
        "kind",
        "unknown-conn",
        "wrong-parity",
        "oversized",
        "bad-end",
        "abort",
    ],
)
def test_a_broken_peer_stops_the_run(
    workers: SpuWorkers, tmp_path: Path, frames: list[bytes], match: str
) -> None:
    err = _honest_receiver_vs(workers, tmp_path, frames)
    assert match in str(err)
    if match.startswith("aborted"):
        assert isinstance(err, PsiPeerAborted)


def test_a_silent_or_vanished_peer_stops_the_run(workers: SpuWorkers, tmp_path: Path) -> None:
    err = _honest_receiver_vs(workers, tmp_path, [_hello()], timeout=2.0)
    assert isinstance(err, PsiProtocolError) and "sent nothing for 2 s" in str(err)
    err = _honest_receiver_vs(workers, tmp_path, [_hello()], close=True)
    assert "closed the link before the end" in str(err)


def test_a_peer_whose_spu_process_dies_mid_run_stops_both(workers: SpuWorkers, tmp_path: Path) -> None:
    taken: list[SpuWorker] = []
    take = workers.take

    def spy() -> SpuWorker:
        w = take()
        taken.append(w)
        return w

    workers.take = spy  # type: ignore[method-assign]

    def killer() -> None:
        deadline = time.monotonic() + 60
        while len(taken) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(1.0)  # both linked and running (a run of 10^6 IDs takes seconds)
        taken[1].kill()

    threading.Thread(target=killer, daemon=True).start()
    a = [f"+86 {13800000000 + i}" for i in range(1_000_000)]
    ends: tuple[QueueTransport, QueueTransport] = transport_pair()
    cfgs = (PsiConfig("t-1", "receiver", idle_timeout=20), PsiConfig("t-1", "sender", idle_timeout=20))
    engine = SpuPsi("spu-rr22", workers)
    start = time.monotonic()
    with pytest.raises(PsiError) as info:
        run_pair((engine, engine), (a, a[::2]), cfgs, transports=ends)
    print(info.value)
    assert "SPU" in str(info.value) or "peer" in str(info.value)
    assert time.monotonic() - start < 60
    assert len(taken) == 2 and all(w.proc.poll() is not None for w in taken), "both SPU processes stopped"
    assert not list(tmp_path.rglob("*.csv"))


def test_a_dead_workers_reason_is_the_end_of_its_log(workers: SpuWorkers) -> None:
    """SPU logs long config lines before it aborts; what a caller (and the peer, capped at 500
    characters) is told must be the end of the log, where the reason is."""
    w = workers.take()
    try:
        with (w.dir / "spu.log").open("a") as log:
            log.write("[info] PSI config: " + "x" * 3000 + "\n")
            log.write("Check failed: something went wrong in Rr22PsiReceiver::Init\n")
        tail = w.log_tail()
        assert tail.endswith("Check failed: something went wrong in Rr22PsiReceiver::Init")
        assert len(tail) <= 401 and tail.startswith("…")
    finally:
        w.close()
