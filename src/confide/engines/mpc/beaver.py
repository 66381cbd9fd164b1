"""Correlated randomness from a dealer: Beaver triples, matrix triples, private-product pairs and
truncation pairs; and the local arithmetic that consumes them.

Trust model (state it plainly): the dealer is a **trusted, non-colluding third node**. It sees no
data and no share of data, only the shapes of the requests (public protocol parameters). It
knows every party's share of every triple, so a dealer that colludes with one party (gives it the
other party's triple shares) lets that party learn everything the other party opened to it, i.e.
the other party's inputs. A dealer that deviates (wrong ``c``) breaks correctness, not privacy
(Beaver openings are masked by ``a`` and ``b`` regardless). Parties are semi-honest
(honest-but-curious): there are no MACs, a party that sends wrong shares makes results wrong
undetected. Replacing the dealer by a cryptographic generator (OT/HE-based, e.g. Gilboa
multiplication) keeps the interface: ``DealerRequest`` in, the same material out.

Bandwidth: every party's random pieces come from one 32-byte seed per request (AES-CTR, see
``shares.prg``); only the last party (or, for a private product, the right-hand owner) receives an
explicit correction, so an elementwise triple costs the dealer 32 B + 8 B per element to send.

Kinds (a request is a list of specs, answered in one message per party):

* ``elem(n)``: ``a, b, c = a*b`` elementwise, length n.
* ``matmul(m, k, p)``: ``A (m,k), B (k,p), C = A @ B``.
* ``private(n, p, q, left, right)``: for ``L^T R`` with ``L (n,p)`` held in the clear by
  ``left`` and ``R (n,q)`` by ``right``: ``left`` gets a uniform mask ``U (n,p)`` and ``r_l``,
  ``right`` gets ``V (n,q)`` and ``r_r`` with ``r_l + r_r = U^T V``. Online, ``left`` sends
  ``L - U``, ``right`` sends ``R - V``; ``left``'s share is ``U^T (R - V) + r_l``, ``right``'s
  is ``(L - U)^T R + r_r``. Half the traffic of a Beaver product on shares.
* ``trunc(n, bits)``: shares of ``r`` uniform in ``[0, 2^62)`` and of ``r >> bits``
  (``fixedpoint.truncate_with_pair``, any number of parties).
* ``compare(n)``: for ``n`` secure comparisons (``compare.geq_public``), per element: ``r``
  uniform in Z_2^64 shared twice (additively, and bit by bit as XOR shares of one 64-bit word),
  63 boolean AND triples packed in three words (bit ``i`` of ``a``, ``b``, ``c`` with
  ``c = a AND b``), and a random bit ``s`` shared both ways (XOR and additive: a "daBit", for
  turning the result bit into an additive share).
"""

from __future__ import annotations

import os
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from .errors import MpcProtocolError
from .fixedpoint import Ring
from .program import Inbound, Round
from .shares import SEED_BYTES, RandomBytes, prg
from .wire import Header, Tag, decode_message, encode_message

SPEC_WORDS = 6


class Kind(IntEnum):
    ELEM = 1
    MATMUL = 2
    PRIVATE = 3
    TRUNC = 4
    COMPARE = 5


@dataclass(frozen=True)
class Spec:
    kind: Kind
    dims: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)

    @staticmethod
    def elem(n: int) -> Spec:
        return Spec(Kind.ELEM, (n, 0, 0, 0, 0))

    @staticmethod
    def matmul(m: int, k: int, p: int) -> Spec:
        return Spec(Kind.MATMUL, (m, k, p, 0, 0))

    @staticmethod
    def private(n: int, p: int, q: int, left: int, right: int) -> Spec:
        return Spec(Kind.PRIVATE, (n, p, q, left, right))

    @staticmethod
    def trunc(n: int, bits: int) -> Spec:
        return Spec(Kind.TRUNC, (n, bits, 0, 0, 0))

    @staticmethod
    def compare(n: int) -> Spec:
        return Spec(Kind.COMPARE, (n, 0, 0, 0, 0))


@dataclass(frozen=True)
class ElemTriple:
    a: Ring
    b: Ring
    c: Ring


@dataclass(frozen=True)
class MatTriple:
    a: Ring
    b: Ring
    c: Ring


@dataclass(frozen=True)
class PrivatePair:
    mask: Ring | None  # U for the left owner, V for the right owner, None for other parties
    share: Ring


@dataclass(frozen=True)
class TruncPair:
    bits: int
    r: Ring
    r_shift: Ring


@dataclass(frozen=True)
class CompareMaterial:
    """One party's shares for ``n`` comparisons (see ``compare``): all arrays have shape (n,)."""

    r: Ring  # additive share of r
    r_bits: Ring  # XOR share of the 64 bits of r
    and_a: Ring  # XOR shares of 63 AND triples, bit i of each word is triple i
    and_b: Ring
    and_c: Ring
    s_bit: Ring  # XOR share of the daBit (0 or 1)
    s_arith: Ring  # additive share of the same bit


Material = ElemTriple | MatTriple | PrivatePair | TruncPair | CompareMaterial
_COMPARE_STREAM = 1 << 40  # PRG streams of compare material: far above the 3-per-spec streams


def specs_to_array(specs: Sequence[Spec]) -> Ring:
    rows = [[int(s.kind), *s.dims] for s in specs]
    return np.array(rows, dtype=np.uint64).reshape(len(specs), SPEC_WORDS)


def specs_from_array(arr: Ring, where: str) -> list[Spec]:
    if arr.ndim != 2 or arr.shape[1] != SPEC_WORDS:
        raise MpcProtocolError(f"{where}: dealer request has shape {arr.shape}")
    out: list[Spec] = []
    for row in arr.tolist():
        try:
            kind = Kind(row[0])
        except ValueError:
            raise MpcProtocolError(f"{where}: unknown material kind {row[0]}") from None
        if any(d >= 2**31 for d in row[1:]):
            raise MpcProtocolError(f"{where}: dimension too large")
        out.append(Spec(kind, (row[1], row[2], row[3], row[4], row[5])))
    return out


def _random_parts(spec: Spec, index: int, party: int, parties: Sequence[int], seed: bytes) -> list[Ring]:
    """The pieces of ``party``'s material that are PRG output (identical at dealer and party)."""
    s0, s1, s2 = 3 * index, 3 * index + 1, 3 * index + 2
    last = party == parties[-1]
    d = spec.dims
    if spec.kind is Kind.ELEM:
        parts = [prg(seed, d[0], s0), prg(seed, d[0], s1)]
        return parts if last else [*parts, prg(seed, d[0], s2)]
    if spec.kind is Kind.MATMUL:
        parts = [prg(seed, (d[0], d[1]), s0), prg(seed, (d[1], d[2]), s1)]
        return parts if last else [*parts, prg(seed, (d[0], d[2]), s2)]
    if spec.kind is Kind.PRIVATE:
        n, p, q, left, right = d
        if party == left:
            return [prg(seed, (n, p), s0), prg(seed, (p, q), s1)]
        if party == right:
            return [prg(seed, (n, q), s0)]
        return []
    if spec.kind is Kind.COMPARE:  # r, r_bits, and_a, and_b, and_c, s_bit, s_arith
        streams = [prg(seed, d[0], _COMPARE_STREAM + 8 * index + j) for j in range(7)]
        streams[5] = streams[5] & np.uint64(1)
        return streams[2:4] if last else streams
    # TRUNC
    return [] if last else [prg(seed, d[0], s0), prg(seed, d[0], s1)]


def _check_spec(spec: Spec, parties: Sequence[int], where: str) -> None:
    d = spec.dims
    if spec.kind is Kind.PRIVATE and (d[3] not in parties or d[4] not in parties or d[3] == d[4]):
        raise MpcProtocolError(f"{where}: private product between unknown parties {d[3]}, {d[4]}")
    if spec.kind is Kind.TRUNC and not 0 < d[1] < 62:
        raise MpcProtocolError(f"{where}: truncation by {d[1]} bits")
    size = {Kind.ELEM: d[0], Kind.MATMUL: d[0] * d[1] + d[1] * d[2], Kind.PRIVATE: d[0] * (d[1] + d[2])}
    if size.get(spec.kind, d[0]) > 2**31:
        raise MpcProtocolError(f"{where}: request too large")


def deal(
    specs: Sequence[Spec], parties: Sequence[int], seeds: dict[int, bytes], random_bytes: RandomBytes
) -> dict[int, list[Ring]]:
    """The explicit corrections each party needs, besides its seed."""
    corr: dict[int, list[Ring]] = {p: [] for p in parties}
    last = parties[-1]
    for i, spec in enumerate(specs):
        parts = {p: _random_parts(spec, i, p, parties, seeds[p]) for p in parties}
        if spec.kind in (Kind.ELEM, Kind.MATMUL):
            a = sum_ring([parts[p][0] for p in parties])
            b = sum_ring([parts[p][1] for p in parties])
            c = a * b if spec.kind is Kind.ELEM else _matmul(a, b)
            for p in parties[:-1]:
                c -= parts[p][2]
            corr[last].append(c)
        elif spec.kind is Kind.PRIVATE:
            left, right = spec.dims[3], spec.dims[4]
            u, r_l = parts[left]
            (v,) = parts[right]
            corr[right].append(_matmul(np.ascontiguousarray(u.T), v) - r_l)
        elif spec.kind is Kind.COMPARE:
            corr[last] += _deal_compare(
                spec.dims[0], [parts[p] for p in parties[:-1]], parts[last], random_bytes
            )
        else:
            bits = spec.dims[1]
            r = prg(random_bytes(SEED_BYTES), spec.dims[0]) >> np.uint64(2)
            r_shift = r >> np.uint64(bits)
            for p in parties[:-1]:
                r = r - parts[p][0]
                r_shift = r_shift - parts[p][1]
            corr[last] += [r, r_shift]
    return corr


def _deal_compare(
    n: int, others: list[list[Ring]], last: list[Ring], random_bytes: RandomBytes
) -> list[Ring]:
    """The last party's explicit pieces: r, r_bits, and_c, s_bit, s_arith (its and_a, and_b are PRG)."""
    r = prg(random_bytes(SEED_BYTES), n)
    s = prg(random_bytes(SEED_BYTES), n) & np.uint64(1)
    r_add, r_xor, s_xor, s_add = r.copy(), r.copy(), s.copy(), s.copy()
    a, b = last[0].copy(), last[1].copy()
    c_xor = np.zeros(n, dtype=np.uint64)
    for o in others:
        r_add -= o[0]
        r_xor ^= o[1]
        a ^= o[2]
        b ^= o[3]
        c_xor ^= o[4]
        s_xor ^= o[5]
        s_add -= o[6]
    return [r_add, r_xor, (a & b) ^ c_xor, s_xor, s_add]


def expand(
    specs: Sequence[Spec], party: int, parties: Sequence[int], seed: bytes, corr: list[Ring], where: str
) -> list[Material]:
    """Party side: seed + explicit corrections -> this party's material, checking shapes."""
    it = iter(corr)

    def take(shape: tuple[int, ...]) -> Ring:
        arr = next(it, None)
        if arr is None or arr.shape != shape:
            got = None if arr is None else arr.shape
            raise MpcProtocolError(f"{where}: dealer material has shape {got}, expected {shape}")
        return arr

    last = party == parties[-1]
    out: list[Material] = []
    for i, spec in enumerate(specs):
        parts = _random_parts(spec, i, party, parties, seed)
        d = spec.dims
        if spec.kind is Kind.ELEM:
            c = take((d[0],)) if last else parts[2]
            out.append(ElemTriple(parts[0], parts[1], c))
        elif spec.kind is Kind.MATMUL:
            c = take((d[0], d[2])) if last else parts[2]
            out.append(MatTriple(parts[0], parts[1], c))
        elif spec.kind is Kind.PRIVATE:
            _, p, q, left, right = d
            if party == left:
                out.append(PrivatePair(parts[0], parts[1]))
            elif party == right:
                out.append(PrivatePair(parts[0], take((p, q))))
            else:
                out.append(PrivatePair(None, np.zeros((p, q), dtype=np.uint64)))
        elif spec.kind is Kind.COMPARE:
            if last:
                r, r_bits = take((d[0],)), take((d[0],))
                and_c, s_bit, s_arith = take((d[0],)), take((d[0],)), take((d[0],))
                if np.any(s_bit > 1):
                    raise MpcProtocolError(f"{where}: a daBit share is not a bit")
                out.append(CompareMaterial(r, r_bits, parts[0], parts[1], and_c, s_bit, s_arith))
            else:
                out.append(CompareMaterial(*parts))
        else:
            if last:
                r, rs = take((d[0],)), take((d[0],))
            else:
                r, rs = parts
            out.append(TruncPair(d[1], r, rs))
    if next(it, None) is not None:
        raise MpcProtocolError(f"{where}: dealer sent more material than requested")
    return out


def sum_ring(xs: Sequence[Ring]) -> Ring:
    total = np.array(xs[0], dtype=np.uint64, copy=True)
    for x in xs[1:]:
        total += x
    return total


def _matmul(a: Ring, b: Ring) -> Ring:
    """Ring matrix product (numpy integer matmul wraps mod 2^64); contiguous operands are ~4x faster."""
    out: Ring = np.matmul(np.ascontiguousarray(a), np.ascontiguousarray(b))
    return out


matmul_ring = _matmul


def beaver_elem(party: int, e: Ring, f: Ring, t: ElemTriple) -> Ring:
    """Share of ``x*y`` from opened ``e = x - a``, ``f = y - b`` (party 0 adds ``e*f``)."""
    z: Ring = t.c + e * t.b + f * t.a
    return z + e * f if party == 0 else z


def beaver_mat(party: int, e: Ring, f: Ring, t: MatTriple) -> Ring:
    """Share of ``X @ Y`` from opened ``E = X - A``, ``F = Y - B``."""
    z = t.c + _matmul(e, t.b) + _matmul(t.a, f)
    return z + _matmul(e, f) if party == 0 else z


# ---------------------------------------------------------------------------- the dealer node


class Dealer:
    """The dealer's side of a session: answers identical requests from every compute party.

    ``program()`` is a generator in the same style as a party's (see ``party``): it yields
    ``Round`` objects and receives the inbound messages. Requests from the parties must agree
    (same specs); an empty request means the session is over.
    """

    def __init__(
        self, dealer_id: int, parties: Sequence[int], session: bytes, random_bytes: RandomBytes = os.urandom
    ) -> None:
        self.id = dealer_id
        self.parties = tuple(parties)
        self.session = session
        self.random_bytes = random_bytes
        self.requests_served = 0

    def program(self) -> Generator[Round, Inbound, int]:
        recv = frozenset(self.parties)
        send: dict[int, bytes] = {}
        step = 0
        while True:
            inbound = yield Round(send, recv)
            specs_by_party: dict[int, list[Spec]] = {}
            for p in self.parties:
                if p not in inbound:
                    raise MpcProtocolError(f"dealer: no request from party {p}")
                hdr = Header(p, self.id, self.session, step, Tag.DEALER_REQUEST)
                (arr,) = decode_message(inbound[p], hdr, n_arrays=1)
                specs_by_party[p] = specs_from_array(arr, f"dealer request from party {p}")
            first = specs_by_party[self.parties[0]]
            if any(specs_by_party[p] != first for p in self.parties):
                raise MpcProtocolError("dealer: parties disagree on the request (shapes or kinds differ)")
            if not first:
                return self.requests_served
            for spec in first:
                _check_spec(spec, self.parties, "dealer request")
            seeds = {p: self.random_bytes(SEED_BYTES) for p in self.parties}
            corr = deal(first, self.parties, seeds, self.random_bytes)
            send = {}
            for p in self.parties:
                seed_arr = np.frombuffer(seeds[p], dtype="<u8").astype(np.uint64)
                hdr = Header(self.id, p, self.session, step, Tag.DEALER_MATERIAL)
                send[p] = encode_message(hdr, [seed_arr, *corr[p]])
            step += 1
            self.requests_served += 1
