"""A compute party's side of a session: the interactive building blocks as generator steps.

Every method that talks to peers is a generator to be used with ``yield from`` inside a protocol
(see ``program``). Messages carry the session id and a per-link step counter, so a replayed,
reordered, dropped, foreign or truncated message is an ``MpcProtocolError`` at the receiver.

Building blocks: ``inputs`` (owners share their data; the other parties receive 32-byte seeds),
``open`` (reconstruct shared values to all compute parties), ``dealer`` (correlated randomness),
``mul`` / ``matmul`` (Beaver), ``private_product`` (``L^T R`` for two private matrices),
``truncate`` (SecureML local for 2 parties, dealer pair otherwise), ``finish`` (release the
dealer). Outputs stay shares; ``reveal_message`` / ``reveal`` are the explicit release step.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Mapping, Sequence

import numpy as np

from . import fixedpoint as fp
from .beaver import (
    ElemTriple,
    Material,
    MatTriple,
    PrivatePair,
    Spec,
    TruncPair,
    beaver_elem,
    beaver_mat,
    expand,
    matmul_ring,
    specs_to_array,
)
from .errors import MpcError, MpcProtocolError
from .fixedpoint import Ring
from .program import Inbound, Round
from .shares import SEED_BYTES, RandomBytes, prg
from .wire import SESSION_BYTES, Header, Tag, decode_message, encode_message

Step = Generator[Round, Inbound, "object"]


class PartyContext:
    def __init__(
        self,
        party: int,
        parties: Sequence[int],
        session: bytes,
        dealer: int | None = None,
        *,
        frac_bits: int = fp.FRAC_BITS,
        random_bytes: RandomBytes = os.urandom,
    ) -> None:
        if party not in parties:
            raise MpcError(f"party {party} is not among {list(parties)}")
        if len(session) != SESSION_BYTES:
            raise MpcError(f"session id must be {SESSION_BYTES} bytes")
        self.party = party
        self.parties = tuple(parties)
        self.peers = tuple(p for p in parties if p != party)
        self.session = session
        self.dealer_id = dealer
        self.frac_bits = frac_bits
        self.random_bytes = random_bytes
        self._sent: dict[int, int] = {}
        self._recv: dict[int, int] = {}

    # ------------------------------------------------------------------ message plumbing

    def _exchange(
        self,
        send: Mapping[int, tuple[Tag, Sequence[Ring]]],
        recv: Mapping[int, tuple[Tag, int | None]],
    ) -> Generator[Round, Inbound, dict[int, list[Ring]]]:
        out: dict[int, bytes] = {}
        for dst, (tag, arrays) in send.items():
            step = self._sent.get(dst, 0)
            out[dst] = encode_message(Header(self.party, dst, self.session, step, tag), arrays)
            self._sent[dst] = step + 1
        inbound = yield Round(out, frozenset(recv))
        got: dict[int, list[Ring]] = {}
        for src, (tag, n_arrays) in recv.items():
            if src not in inbound:
                raise MpcProtocolError(f"party {self.party}: no message from party {src}")
            step = self._recv.get(src, 0)
            got[src] = decode_message(
                inbound[src], Header(src, self.party, self.session, step, tag), n_arrays
            )
            self._recv[src] = step + 1
        return got

    # ------------------------------------------------------------------ inputs and openings

    def inputs(
        self, mine: Sequence[Ring], shapes: Mapping[int, Sequence[tuple[int, ...]]]
    ) -> Generator[Round, Inbound, dict[int, list[Ring]]]:
        """Secret-share every owner's arrays in one round. ``shapes[owner]`` lists the (public)
        shapes each owner contributes; ``mine`` are this party's own arrays in that order.
        The owner sends each peer one 32-byte seed per array; its own share is ``x - sum prg``."""
        own_shapes = [tuple(s) for s in shapes.get(self.party, [])]
        if [a.shape for a in mine] != own_shapes:
            raise MpcError(f"party {self.party}: input shapes {[a.shape for a in mine]} != {own_shapes}")
        seeds = {p: [self.random_bytes(SEED_BYTES) for _ in own_shapes] for p in self.peers}
        send: dict[int, tuple[Tag, Sequence[Ring]]] = {}
        if own_shapes:
            for p in self.peers:
                send[p] = (Tag.INPUT, [np.frombuffer(s, dtype="<u8").astype(np.uint64) for s in seeds[p]])
        recv = {o: (Tag.INPUT, len(shapes[o])) for o in shapes if o != self.party and shapes[o]}
        got = yield from self._exchange(send, recv)
        result: dict[int, list[Ring]] = {}
        for owner, owner_shapes in shapes.items():
            if owner == self.party:
                own: list[Ring] = []
                for i, x in enumerate(mine):
                    s = np.array(x, dtype=np.uint64, copy=True)
                    for p in self.peers:
                        s -= prg(seeds[p][i], x.shape)
                    own.append(s)
                result[owner] = own
            elif owner_shapes:
                out = []
                for seed_arr, shape in zip(got[owner], owner_shapes, strict=True):
                    if seed_arr.shape != (SEED_BYTES // 8,):
                        raise MpcProtocolError(f"input seed from party {owner} has shape {seed_arr.shape}")
                    out.append(prg(seed_arr.astype("<u8").tobytes(), tuple(shape)))
                result[owner] = out
        return result

    def open(self, xs: Sequence[Ring]) -> Generator[Round, Inbound, list[Ring]]:
        """Reconstruct shared arrays at every compute party (one round)."""
        return (yield from self._open(xs, Tag.OPEN, np.add, "opening"))

    def open_xor(self, xs: Sequence[Ring]) -> Generator[Round, Inbound, list[Ring]]:
        """Reconstruct XOR-shared words at every compute party (one round)."""
        return (yield from self._open(xs, Tag.OPEN_BITS, np.bitwise_xor, "bit opening"))

    def _open(
        self, xs: Sequence[Ring], tag: Tag, combine: np.ufunc, what: str
    ) -> Generator[Round, Inbound, list[Ring]]:
        got = yield from self._exchange(
            {p: (tag, xs) for p in self.peers}, {p: (tag, len(xs)) for p in self.peers}
        )
        out = [np.array(x, dtype=np.uint64, copy=True) for x in xs]
        for p in self.peers:
            for i, arr in enumerate(got[p]):
                if arr.shape != out[i].shape:
                    raise MpcProtocolError(
                        f"{what} from party {p}: shape {arr.shape}, expected {out[i].shape}"
                    )
                combine(out[i], arr, out=out[i])
        return out

    # ------------------------------------------------------------------ dealer

    def dealer(self, specs: Sequence[Spec]) -> Generator[Round, Inbound, list[Material]]:
        """Ask the dealer for correlated randomness (every party asks for the same specs)."""
        if self.dealer_id is None:
            raise MpcError("this session has no dealer")
        d = self.dealer_id
        got = yield from self._exchange(
            {d: (Tag.DEALER_REQUEST, [specs_to_array(specs)])}, {d: (Tag.DEALER_MATERIAL, None)}
        )
        arrays = got[d]
        if not arrays or arrays[0].shape != (SEED_BYTES // 8,):
            raise MpcProtocolError("dealer material: missing seed")
        seed = arrays[0].astype("<u8").tobytes()
        return expand(specs, self.party, self.parties, seed, arrays[1:], "dealer material")

    def finish(self) -> Generator[Round, Inbound, None]:
        """Tell the dealer this party is done (an empty request)."""
        if self.dealer_id is not None:
            yield from self._exchange({self.dealer_id: (Tag.DEALER_REQUEST, [specs_to_array([])])}, {})

    # ------------------------------------------------------------------ arithmetic

    def mul(self, pairs: Sequence[tuple[Ring, Ring, ElemTriple]]) -> Generator[Round, Inbound, list[Ring]]:
        """Elementwise products of shared arrays (untruncated: 2F fractional bits), one round."""
        opened = yield from self.open([v for x, y, t in pairs for v in (x - t.a, y - t.b)])
        return [
            beaver_elem(self.party, opened[2 * i], opened[2 * i + 1], t) for i, (_, _, t) in enumerate(pairs)
        ]

    def matmul(self, x: Ring, y: Ring, t: MatTriple) -> Generator[Round, Inbound, Ring]:
        """Shared ``x @ y`` (untruncated), one round."""
        e, f = yield from self.open([x - t.a, y - t.b])
        return beaver_mat(self.party, e, f, t)

    def private_product(
        self, left: int, right: int, mat: Ring | None, pair: PrivatePair
    ) -> Generator[Round, Inbound, Ring]:
        """Shares of ``L^T R`` where ``left`` holds ``L`` and ``right`` holds ``R`` in the clear
        (``mat`` is this party's own matrix, None for other parties). One round between the two."""
        if self.party == left:
            assert mat is not None and pair.mask is not None
            e = mat - pair.mask
            got = yield from self._exchange(
                {right: (Tag.PRIVATE_PRODUCT, [e])}, {right: (Tag.PRIVATE_PRODUCT, 1)}
            )
            (f,) = got[right]
            if f.shape[0] != e.shape[0] or f.shape[1] != pair.share.shape[1]:
                raise MpcProtocolError(f"private product from party {right}: shape {f.shape}")
            return matmul_ring(np.ascontiguousarray(pair.mask.T), f) + pair.share
        if self.party == right:
            assert mat is not None and pair.mask is not None
            f = mat - pair.mask
            got = yield from self._exchange(
                {left: (Tag.PRIVATE_PRODUCT, [f])}, {left: (Tag.PRIVATE_PRODUCT, 1)}
            )
            (e,) = got[left]
            if e.shape[0] != f.shape[0] or e.shape[1] != pair.share.shape[0]:
                raise MpcProtocolError(f"private product from party {left}: shape {e.shape}")
            return matmul_ring(np.ascontiguousarray(e.T), mat) + pair.share
        return pair.share.copy()

    def truncate(
        self, xs: Sequence[Ring], bits: int, pairs: Sequence[TruncPair] | None = None, lx: int = 46
    ) -> Generator[Round, Inbound, list[Ring]]:
        """Divide shared values by ``2^bits`` (see ``fixedpoint``). Two parties: local, no round
        (``pairs`` unused). More parties: ``pairs`` from ``Spec.trunc``; requires ``|x| < 2^lx``."""
        if len(self.parties) == 2:
            idx = self.parties.index(self.party)
            return [fp.truncate_share_2pc(x, idx, bits) for x in xs]
        if pairs is None or len(pairs) != len(xs):
            raise MpcError("truncation among 3+ parties needs one dealer pair per array")
        if not bits <= lx <= 61:
            raise MpcError("truncation pair needs bits <= lx <= 61")
        offset = np.uint64(1 << lx)
        masked = [
            x + pr.r + (offset if self.party == self.parties[0] else np.uint64(0))
            for x, pr in zip(xs, pairs, strict=True)
        ]
        opened = yield from self.open(masked)
        out = []
        for c, pr in zip(opened, pairs, strict=True):
            if pr.bits != bits:
                raise MpcError("truncation pair made for another shift")
            s = np.uint64(0) - pr.r_shift
            if self.party == self.parties[0]:
                s = s + fp.public_shift(c, bits) - np.uint64(1 << (lx - bits))
            out.append(s)
        return out

    def public(self, c: Ring) -> Ring:
        """This party's share of a public ring constant."""
        c = np.asarray(c, dtype=np.uint64)
        return c.copy() if self.party == self.parties[0] else np.zeros_like(c)


# ---------------------------------------------------------------------------- release


def reveal_message(session: bytes, party: int, requester: int, shares: Sequence[Ring]) -> bytes:
    """One party's output shares, addressed to the requester. A node sends this only after the
    ledger shows the release approved; without every party's message the outputs stay hidden."""
    return encode_message(Header(party, requester, session, 0, Tag.REVEAL), shares)


def reveal(
    messages: Mapping[int, bytes], session: bytes, requester: int, parties: Sequence[int], n_arrays: int
) -> list[Ring]:
    """Requester side: sum every party's output shares (mod 2^64)."""
    missing = [p for p in parties if p not in messages]
    if missing:
        raise MpcProtocolError(f"reveal: no share from parties {missing}")
    extra = [p for p in messages if p not in parties]
    if extra:
        raise MpcProtocolError(f"reveal: shares from unknown parties {extra}")
    total: list[Ring] | None = None
    for p in parties:
        arrays = decode_message(messages[p], Header(p, requester, session, 0, Tag.REVEAL), n_arrays)
        if total is None:
            total = [a.copy() for a in arrays]
            continue
        for i, a in enumerate(arrays):
            if a.shape != total[i].shape:
                raise MpcProtocolError(
                    f"reveal: party {p} array {i} has shape {a.shape}, expected {total[i].shape}"
                )
            total[i] += a
    assert total is not None
    return total
