from __future__ import annotations

import numpy as np
import pytest
from _mpc_helpers import SESSION, contexts, run_with_dealer

from confide.engines.mpc import fixedpoint as fp
from confide.engines.mpc.errors import MpcProtocolError, MpcTimeoutError
from confide.engines.mpc.party import PartyContext, reveal, reveal_message
from confide.engines.mpc.program import Round
from confide.engines.mpc.transport import run_local
from confide.engines.mpc.wire import Header, Tag, decode_message, encode_message

HDR = Header(0, 1, SESSION, 3, Tag.OPEN)


def _msg() -> bytes:
    return encode_message(HDR, [np.arange(5, dtype=np.uint64), np.ones((2, 3), dtype=np.uint64)])


def test_roundtrip() -> None:
    a, b = decode_message(_msg(), HDR, 2)
    assert a.tolist() == [0, 1, 2, 3, 4] and b.shape == (2, 3)


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda m: m[:10], "truncated header"),
        (lambda m: m[:-1], "truncated payload"),
        (lambda m: m + b"\0", "trailing bytes"),
        (lambda m: b"XMPC" + m[4:], "bad magic"),
        (lambda m: m[:4] + b"\x02" + m[5:], "unsupported version"),
        (lambda m: m[:5] + b"\x07" + m[6:], "unsupported dtype"),
        (lambda m: m[:8] + bytes(16) + m[24:], "wrong session"),
        (lambda m: m[:24] + (4).to_bytes(4, "little") + m[28:], "out of order"),
        (lambda m: m[:28] + (1).to_bytes(2, "little") + m[30:], "unexpected tag"),
        (lambda m: m[:6] + b"\x05" + m[7:], "addressed"),
        (lambda m: m[:32] + (48).to_bytes(8, "little") + m[40:], "payload bytes"),
        (lambda m: m[:40] + b"\x03" + m[41:], "dimensions"),
        (lambda m: m[:43], "truncated shape table"),
        (lambda m: "text", "not bytes"),
    ],
)
def test_malformed(mutate: object, match: str) -> None:
    with pytest.raises(MpcProtocolError, match=match):
        decode_message(mutate(_msg()), HDR, 2)  # type: ignore[operator]


def _peer_sends(payload: bytes) -> object:
    yield Round({0: payload}, frozenset())
    return None


def _opener(ctx: PartyContext) -> object:
    out = yield from ctx.open([fp.encode([1.0, 2.0])])
    return out


def test_malformed_from_peer_stops_the_session() -> None:
    ctx = contexts(dealer=None)
    good = encode_message(Header(1, 0, SESSION, 0, Tag.OPEN), [fp.encode([1.0, 2.0])])
    with pytest.raises(MpcProtocolError, match="truncated payload"):
        run_local({0: _opener(ctx[0]), 1: _peer_sends(good[:-3])}, timeout=2)  # type: ignore[dict-item]
    with pytest.raises(MpcProtocolError, match="wrong session"):
        other = encode_message(Header(1, 0, bytes(16), 0, Tag.OPEN), [fp.encode([1.0, 2.0])])
        run_local({0: _opener(ctx[0]), 1: _peer_sends(other)}, timeout=2)  # type: ignore[dict-item]


def _silent() -> object:
    yield Round({}, frozenset())
    return None


def test_party_that_never_answers_times_out() -> None:
    import time

    ctx = contexts(dealer=None)
    t0 = time.monotonic()
    with pytest.raises(MpcTimeoutError, match=r"no message from party 1 within 0\.3 s"):
        run_local({0: _opener(ctx[0]), 1: _silent()}, timeout=0.3)  # type: ignore[dict-item]
    assert time.monotonic() - t0 < 3


def _hangs() -> object:
    import threading

    threading.Event().wait(60)
    yield Round({}, frozenset())


def test_hung_party_and_dealer_time_out() -> None:
    ctx = contexts()
    from confide.engines.mpc.beaver import Spec

    def asks(c: PartyContext) -> object:
        m = yield from c.dealer([Spec.elem(4)])
        return m

    with pytest.raises(MpcTimeoutError):
        run_with_dealer({0: asks(ctx[0]), 1: _hangs()}, timeout=0.3)  # type: ignore[dict-item]


def test_reveal_needs_every_share_and_checks_them() -> None:
    x = fp.encode([1.25, -3.0])
    s0 = np.random.default_rng(5).integers(0, 2**63, 2, dtype=np.uint64)
    msgs = {0: reveal_message(SESSION, 0, 7, [s0]), 1: reveal_message(SESSION, 1, 7, [x - s0])}
    (out,) = reveal(msgs, SESSION, 7, (0, 1), 1)
    assert fp.decode(out).tolist() == [1.25, -3.0]
    with pytest.raises(MpcProtocolError, match="no share from parties"):
        reveal({0: msgs[0]}, SESSION, 7, (0, 1), 1)
    with pytest.raises(MpcProtocolError, match="addressed"):
        reveal(msgs, SESSION, 8, (0, 1), 1)
    with pytest.raises(MpcProtocolError, match="truncated"):
        reveal({0: msgs[0], 1: msgs[1][:-8]}, SESSION, 7, (0, 1), 1)
