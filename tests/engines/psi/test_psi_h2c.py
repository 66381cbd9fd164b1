"""RFC 9380 known-answer tests: the curve25519 suites' vectors (Appendix J.7) and expand_message_xmd
with SHA-512 (Appendix K.3), transcribed into ``rfc9380_kat.json`` (only the fields tested)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from confide.engines.psi import h2c

KAT: dict[str, Any] = json.loads((Path(__file__).parent / "rfc9380_kat.json").read_text())
NU, RO, XMD = KAT["NU"], KAT["RO"], KAT["XMD"]


def _x_double(x: int) -> int:
    """x(2·Q) on curve25519, x-only (Montgomery): (x² - 1)² / (4x(x² + A·x + 1))."""
    p, a = h2c.P, h2c.J
    num = (x * x - 1) ** 2 % p
    den = 4 * x * (x * x + a * x + 1) % p
    return num * pow(den, -1, p) % p


@pytest.mark.parametrize("vec", XMD["tests"], ids=lambda v: f"{v['msg'][:8]}-{v['len_in_bytes']}")
def test_expand_message_xmd_sha512(vec: dict[str, str]) -> None:
    out = h2c.expand_message_xmd(vec["msg"].encode(), XMD["DST"].encode(), int(vec["len_in_bytes"], 16))
    assert out.hex() == vec["uniform_bytes"]


def test_oversize_dst_rule() -> None:
    long_dst = b"x" * 300
    short = hashlib.sha512(b"H2C-OVERSIZE-DST-" + long_dst).digest()
    assert h2c.expand_message_xmd(b"m", long_dst, 48) == h2c.expand_message_xmd(b"m", short, 48)


@pytest.mark.parametrize("vec", NU["vectors"], ids=lambda v: v["msg"][:8] or "empty")
def test_nu_suite_vectors(vec: dict[str, Any]) -> None:
    dst = NU["dst"].encode()
    msg = vec["msg"].encode()
    (u,) = h2c.hash_to_field(msg, dst, 1)
    assert u == int(vec["u"][0], 16)
    x, y = h2c.map_to_curve(u)
    assert (x, y) == (int(vec["Q"]["x"], 16), int(vec["Q"]["y"], 16))
    # The engine's fast path: u(Q) as 32 little-endian bytes (before clearing the cofactor).
    assert h2c.encode_to_curve_u(msg, dst) == x.to_bytes(32, "little")
    # clear_cofactor: P = 8·Q.
    assert _x_double(_x_double(_x_double(x))) == int(vec["P"]["x"], 16)


def test_batch_matches_vectors_together() -> None:
    dst = NU["dst"].encode()
    msgs = [v["msg"].encode() for v in NU["vectors"]]
    got = h2c.encode_batch(msgs, dst)
    assert [int.from_bytes(g, "little") for g in got] == [int(v["Q"]["x"], 16) for v in NU["vectors"]]


@pytest.mark.parametrize("vec", RO["vectors"], ids=lambda v: v["msg"][:8] or "empty")
def test_ro_suite_field_and_map(vec: dict[str, Any]) -> None:
    u0, u1 = h2c.hash_to_field(vec["msg"].encode(), RO["dst"].encode(), 2)
    assert [u0, u1] == [int(s, 16) for s in vec["u"]]
    assert h2c.map_to_curve(u0) == (int(vec["Q0"]["x"], 16), int(vec["Q0"]["y"], 16))
    assert h2c.map_to_curve(u1) == (int(vec["Q1"]["x"], 16), int(vec["Q1"]["y"], 16))


def test_is_square_matches_euler() -> None:
    p = h2c.P
    for a in [0, 1, 2, 3, p - 1, 486662, *range(5, 400, 7), *(pow(7, k, p) for k in range(1, 60))]:
        euler = pow(a, (p - 1) // 2, p)
        assert h2c.is_square(a) == (euler in (0, 1)), a


def test_exceptional_case_cannot_occur() -> None:
    # inv0(1 + Z·u²) is 0 only if -1/Z is a square; for p = 5 mod 8 and Z = 2 it is not.
    p = h2c.P
    assert not h2c.is_square(-pow(2, -1, p) % p)
    x, y = h2c.map_to_curve(0)  # u = 0: x1 = -J, then x2 = 0 if gx1 is not square
    assert x in ((p - h2c.J) % p, 0)
    assert (y * y - x * (x * (x + h2c.J) + 1)) % p == 0


def test_is_square_reduces_any_int() -> None:
    p = h2c.P
    for a in [-1, -2, -486662, p, p + 2, 2 * p + 3, 3 * p - 1, 1 << 300]:
        euler = pow(a % p, (p - 1) // 2, p)
        assert h2c.is_square(a) == (euler in (0, 1)), a


def test_batch_matches_single_map_on_many_messages() -> None:
    # The batch path (GMP, Montgomery batch inversion, no y) against hash_to_field + map_to_curve.
    dst = NU["dst"].encode()
    msgs = [f"+86 {13_800_000_000 + i}".encode() for i in range(300)] + [b"", b"\x00" * 200]
    got = h2c.encode_batch(msgs, dst)
    assert all(type(g) is bytes and len(g) == 32 for g in got)
    want = [h2c.map_to_curve(h2c.hash_to_field(m, dst, 1)[0])[0].to_bytes(32, "little") for m in msgs]
    assert got == want


def test_batch_inverse_keeps_zeros() -> None:
    p = h2c.P
    vals = [0, 1, 2, 0, p - 1, 486662, 0]
    out = h2c._batch_inverse([h2c.gmpy2.mpz(v) for v in vals])
    assert [int(o) for o in out] == [pow(v, -1, p) if v else 0 for v in vals]
