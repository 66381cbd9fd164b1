"""Secure aggregation of integer vectors mod 2^64 (Bonawitz et al., CCS 2017), as message passing.

The server learns ``sum(x_u)`` over the clients that completed round 2, and nothing else about any
``x_u``, as long as fewer than ``t`` clients collude with it; clients may drop out at any point as
long as ``t`` of them are left. :class:`SecAggClient` and :class:`SecAggServer` only turn bytes into
bytes; the host (a node, or the in-process bench) carries them over authenticated links.

Message flow (``wire`` has the byte layouts; ``U1 ⊇ U2 ⊇ U3 ⊇ U4`` are the clients left)::

    round 0  client  advertise_keys()             -> ADVERTISE_KEYS (c_pk, s_pk, sig)  -> server
             server  receive_keys(...) ...; broadcast_keys() -> KEY_LIST of U1 to each u in U1
    round 1  client  share_keys(KEY_LIST)         -> ENCRYPTED_SHARES                  -> server
             server  receive_shares(...) ...; forward_shares() -> FORWARDED_SHARES to each u in U2
    round 2  client  masked_input(FORWARDED_SHARES, x) -> MASKED_INPUT y_u             -> server
             server  receive_masked_input(...) ...; announce_survivors() -> SURVIVORS (U3) to U3
    round 3  client  sign_survivors(SURVIVORS)    -> SURVIVORS_SIGNATURE (sig over U3) -> server
             server  receive_survivor_signature(...) ...; request_unmasking()
                     -> UNMASK_REQUEST (U3, t signatures over U3) to each u in U4 (the signers)
    round 4  client  unmask(UNMASK_REQUEST)       -> UNMASK_SHARES                     -> server
             server  receive_unmasking(...) ...; aggregate() -> sum of x_u over U3 (uint64 vector)

Round 0: each client makes two X25519 key pairs, ``c`` (to encrypt shares) and ``s`` (to agree on
pairwise masks), and signs ``(label, session, its id, c_pk, s_pk)`` with its long-term identity
(:class:`confide.crypto.Identity`; the session config carries every client's identity public key,
read by the node from the ledger's member records). The server checks each signature on receipt;
every client checks every peer's signature in the key list and refuses the whole list
(:class:`BadSignature`) if one is missing or wrong, before it derives any key from it. Round 1:
client ``u`` draws a self-mask seed ``b_u`` and Shamir-shares ``b_u`` and ``s_u^SK`` (threshold
``t``, point = client id) among ``U1``; the pair of shares for ``v`` is sealed with AES-256-GCM under
``HKDF(X25519(c_u^SK, c_v^PK), salt = session, info = label || u || v)`` (one key per direction,
random nonce, the ids inside the plaintext and, with the session, in the AAD) and goes through the
server. Round 2: ``y_u = x_u + PRG(b_u) + sum_{v in U2, v < u} PRG(s_uv) - sum_{v in U2, v > u}
PRG(s_uv)`` with ``s_uv = X25519(s_u^SK, s_v^PK)`` (``masks``: HKDF then AES-128-CTR). Round 3 (the
paper's consistency check): each client of ``U3`` signs ``(label, session, U3)`` once; the server
needs ``t`` such signatures (else :class:`TooManyDropouts`) and sends ``t`` of them with the
unmasking request. Round 4: a client checks that the request names the ``U3`` it signed
(:class:`InconsistentSurvivors`) and that ``t`` distinct survivors signed it (:class:`BadSignature`
for a wrong or missing one), then sends its shares of ``b_v`` for ``v`` in ``U3`` and of
``s_v^SK`` for ``v`` in ``U2 \\ U3``; the server rebuilds them from ``t`` shares, subtracts the self
masks of the survivors and the pairwise masks the survivors shared with the clients that dropped
after round 1. ``U4`` (the signers) only decides who is asked to unmask: a client of ``U3`` that
drops in round 3 or 4 is still in the sum.

Why a round of its own for the check: a client must see ``t`` signatures over its ``U3`` before it
reveals any share, and those signatures can only be made once ``U3`` is fixed and sent out — so the
signatures cannot ride on the existing request without one more exchange. It costs one round trip
and, per client, one signature and ``t - 1`` verifications.

Threshold rule: ``n`` = the registered clients, ``t`` defaults to ``n // 2 + 1`` and must satisfy
``n / 2 < t <= n`` (and ``t >= 2``). Every round needs ``t`` clients left, else
:class:`TooManyDropouts` (the server aborts and returns no sum; a client refuses to go on).

Never both secrets of one client: the kind of share a client reveals for ``v`` is decided only by
the survivor set, so one request never asks for both; the server refuses shares of the wrong kind;
a client signs one survivor set and answers one unmasking request per session (a second is
:class:`WrongRound`), and only for the set it signed, vouched for by ``t`` signatures. Since
``2t > n`` and an honest client signs once, at most one survivor set can gather ``t`` honest
signatures: every honest client that reveals shares was shown the same ``U3``, so for each ``v``
honest clients reveal shares of ``b_v`` or of ``s_v^SK``, never both. A server that shows different
sets to different clients is refused by all but (at most) one group. With ``c`` clients colluding
with the server, their signatures and shares count for it: the guarantee needs ``2t > n + c``.

Threat model and limits (the paper's actively-secure variant, for the server): the server may
deviate arbitrarily; the clients' identity keys are known to everyone (the ledger) and the links
authenticate each client (the node's signed links). Defended: substituted or replayed public keys
(signed, session-bound), a survivor set that differs between clients (consistency round), shares
of the wrong kind. Not defended: a malicious server can make honest clients abort, and decides on
its own who dropped — it can leave honest inputs out of the sum (down to ``t`` of them); a client
that sends a malformed vector is refused, one that sends a well-formed wrong vector corrupts the
sum (no input validation, as in the paper).

Refusals: every ``receive_*``/client method validates fully before changing state, so a refused
message leaves the party as it was (a client that sees too few clients aborts). Errors (all
:class:`SecAggError`): :class:`MalformedMessage`, :class:`WrongSession`, :class:`WrongRound` (a
replayed old-round or early message), :class:`UnknownSender`, :class:`Misaddressed`,
:class:`DuplicateMessage`, :class:`BadSignature`, :class:`InconsistentSurvivors`,
:class:`ProtocolViolation`, :class:`TooManyDropouts`, :class:`SessionAborted`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ...crypto import Identity, InvalidSignature, PublicKey
from . import shamir, wire
from .errors import (
    BadSignature,
    DuplicateMessage,
    InconsistentSurvivors,
    Misaddressed,
    ProtocolViolation,
    SecAggConfigError,
    SecAggError,
    SessionAborted,
    ShamirError,
    TooManyDropouts,
    UnknownSender,
    WrongRound,
    WrongSession,
)
from .fixedpoint import Ring
from .masks import LABEL, apply_masks, derive, pair_mask_key, self_mask_key
from .wire import SERVER, Header, Kind, ShareKind

RandomBytes = Callable[[int], bytes]
MAX_PARAMS = 1 << 28
MAX_CLIENTS = 0xFFFF
SEED_BYTES = 32
KEYS_SIGNATURE_LABEL = LABEL + b"signed-keys/"
SURVIVORS_SIGNATURE_LABEL = LABEL + b"signed-survivors/"


@dataclass(frozen=True, slots=True)
class SecAggConfig:
    """What the server and every client agree on before round 0 (from the task on the ledger).

    ``clients``: the registered client ids (1..65535); ``params``: the vector length; ``threshold``:
    0 means the default ``n // 2 + 1``; ``identity_keys`` (keyword, required): client id -> the
    public key of its long-term identity (from the ledger's member records), one per client, all
    distinct — what the clients' signed keys and signed survivor sets are checked against.
    """

    session: bytes
    clients: tuple[int, ...]
    params: int
    threshold: int = 0
    identity_keys: Mapping[int, PublicKey] = field(kw_only=True, hash=False)

    def __post_init__(self) -> None:
        if len(self.session) != wire.SESSION_BYTES:
            raise SecAggConfigError(f"session id must be {wire.SESSION_BYTES} bytes")
        ids = tuple(sorted(int(c) for c in self.clients))
        if len(set(ids)) != len(ids) or not all(1 <= c <= MAX_CLIENTS for c in ids):
            raise SecAggConfigError(f"client ids must be distinct and in 1..{MAX_CLIENTS}")
        n = len(ids)
        if n < 2:
            raise SecAggConfigError("secure aggregation needs at least 2 clients")
        t = self.threshold or n // 2 + 1
        if not (2 * t > n and 2 <= t <= n):
            raise SecAggConfigError(f"threshold must satisfy n/2 < t <= n (n={n}), got {t}")
        if not 1 <= self.params <= MAX_PARAMS:
            raise SecAggConfigError(f"params must be in 1..{MAX_PARAMS}, got {self.params}")
        keys = dict(self.identity_keys)
        if set(keys) != set(ids):
            raise SecAggConfigError("identity_keys must give exactly one public key per registered client")
        if not all(isinstance(k, PublicKey) for k in keys.values()):
            raise SecAggConfigError("identity_keys values must be confide.crypto.PublicKey objects")
        if len({(k.suite.name, k.raw()) for k in keys.values()}) != n:
            raise SecAggConfigError("two clients share one identity key")
        object.__setattr__(self, "identity_keys", MappingProxyType({c: keys[c] for c in ids}))
        object.__setattr__(self, "clients", ids)
        object.__setattr__(self, "threshold", t)

    @property
    def n(self) -> int:
        return len(self.clients)

    @property
    def max_message_bytes(self) -> int:
        """The largest message of the session (a masked input, or a list over all clients)."""
        sig = 1 + wire.MAX_SIGNATURE_BYTES
        per_client = max(
            2 + 2 * wire.KEY_BYTES + sig,  # KEY_LIST
            2 + wire.SEALED_BYTES,  # ENCRYPTED_SHARES, FORWARDED_SHARES
            2 + 2 + sig,  # UNMASK_REQUEST: survivor id, signer id and signature
            3 + shamir.SHARE_BYTES,  # UNMASK_SHARES
        )
        return wire.HEADER_BYTES + max(8 * self.params, 4 + self.n * per_client)


# --- helpers ------------------------------------------------------------------------------------


def _raw_public(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes_raw()


def _exchange(sk: X25519PrivateKey, pk: bytes, who: str) -> bytes:
    try:
        return sk.exchange(X25519PublicKey.from_public_bytes(pk))
    except ValueError as exc:  # low-order point: all-zero shared secret
        raise ProtocolViolation(f"{who}: unusable X25519 public key ({exc})") from exc


def _share_aead(agreement: bytes, session: bytes, sender: int, receiver: int) -> AESGCM:
    key = derive(
        agreement, session, b"share-enc/" + sender.to_bytes(2, "big") + receiver.to_bytes(2, "big"), 32
    )
    return AESGCM(key)


def _share_aad(session: bytes, sender: int, receiver: int) -> bytes:
    return b"confide/fl/secagg/v1/shares" + session + sender.to_bytes(2, "big") + receiver.to_bytes(2, "big")


def keys_message(session: bytes, client: int, c_pk: bytes, s_pk: bytes) -> bytes:
    """What a client signs in round 0 (fixed-length fields after the label)."""
    return KEYS_SIGNATURE_LABEL + session + client.to_bytes(2, "big") + c_pk + s_pk


def survivors_message(session: bytes, survivors: Iterable[int]) -> bytes:
    """What a client of ``U3`` signs in round 3: the sorted survivor set, count first."""
    ids = sorted(survivors)
    return (
        SURVIVORS_SIGNATURE_LABEL
        + session
        + len(ids).to_bytes(2, "big")
        + b"".join(i.to_bytes(2, "big") for i in ids)
    )


def _verify(key: PublicKey, signature: bytes, message: bytes, what: str) -> None:
    if not signature:
        raise BadSignature(f"{what}: signature missing")
    try:
        key.verify(signature, message)
    except InvalidSignature:
        raise BadSignature(f"{what}: signature does not verify under the client's identity key") from None


def _combine(shares: Iterable[shamir.Share], what: str) -> bytes:
    try:
        return shamir.combine(list(shares))
    except ShamirError as exc:
        raise ProtocolViolation(f"cannot rebuild {what}: {exc}") from exc


def _open(
    data: bytes, config: SecAggConfig, me: int, expect: Kind, current_round: int, senders: Iterable[int]
) -> tuple[Header, memoryview]:
    """Header checks shared by both sides, in a fixed order; ``senders``: who takes part in the round."""
    head, body = wire.unpack(data, config.max_message_bytes)
    name = f"{head.kind.name} from {head.sender}"
    if head.session != config.session:
        raise WrongSession(f"{name}: message of another session")
    registered = config.clients if me == SERVER else (SERVER,)
    if head.sender not in registered:
        who = "a client of this session" if me == SERVER else "the server"
        raise UnknownSender(f"{head.kind.name}: sender {head.sender} is not {who}")
    if head.receiver != me:
        raise Misaddressed(f"{name} is addressed to {head.receiver}, not {me}")
    if head.round != current_round:
        age = "replayed or late" if head.round < current_round else "early"
        raise WrongRound(f"{age} round-{head.round} {name} during round {current_round}")
    if head.kind != expect:
        raise WrongRound(f"{name} where {expect.name} was expected")
    if head.sender not in set(senders):
        raise UnknownSender(f"{name}: client {head.sender} does not take part in round {current_round}")
    return head, body


# --- client -------------------------------------------------------------------------------------


class SecAggClient:
    """One client of one session. Call the five round methods in order, each at most once.

    ``identity``: the client's long-term signing identity; its public key must be the one the config
    gives for ``client_id``.
    """

    def __init__(
        self, config: SecAggConfig, client_id: int, identity: Identity, rng: RandomBytes = os.urandom
    ) -> None:
        if client_id not in config.clients:
            raise SecAggConfigError(f"client {client_id} is not registered in the session")
        mine = config.identity_keys[client_id]
        if (identity.suite.name, identity.public_key.raw()) != (mine.suite.name, mine.raw()):
            raise SecAggConfigError(f"client {client_id}: the identity is not the one registered for it")
        self.config = config
        self.id = client_id
        self._identity = identity
        self._rng = rng
        self._c_sk = X25519PrivateKey.from_private_bytes(rng(32))
        self._s_sk = X25519PrivateKey.from_private_bytes(rng(32))
        self._next = 0  # the round whose method may run next; 5 = done, -1 = aborted
        self._keys: dict[int, tuple[bytes, bytes]] = {}  # U1: id -> (c_pk, s_pk)
        self._c_agreements: dict[int, bytes] = {}  # U1 \ {me}: X25519(c_me, c_v)
        self._own: tuple[shamir.Share, shamir.Share] | None = None  # my shares of my s_sk and b
        self._seed = b""
        self._held: dict[int, tuple[shamir.Share, shamir.Share]] = {}  # U2 \ {me}: shares of s_v, b_v
        self._u2: tuple[int, ...] = ()
        self._u3: tuple[int, ...] = ()  # the survivor set I signed
        self._u3_signature = b""

    def _expect(self, rnd: int) -> None:
        if self._next == -1:
            raise SessionAborted(f"client {self.id}: the session was aborted")
        if self._next != rnd:
            done = "already answered" if self._next > rnd else "not reached yet"
            raise WrongRound(f"client {self.id}: round {rnd} {done} (at round {self._next})")

    def _receive(self, data: bytes, kind: Kind) -> memoryview:
        if self._next == -1:
            raise SessionAborted(f"client {self.id}: the session was aborted")
        _, body = _open(data, self.config, self.id, kind, self._next, (SERVER,))
        return body

    def _abort(self, exc: SecAggError) -> SecAggError:
        self._next = -1
        return exc

    def _header(self, kind: Kind) -> Header:
        return Header(kind, self.id, SERVER, self.config.session)

    def advertise_keys(self) -> bytes:
        """Round 0: the two public keys, signed with my identity."""
        self._expect(0)
        self._next = 1
        c_pk, s_pk = _raw_public(self._c_sk), _raw_public(self._s_sk)
        sig = self._identity.sign(keys_message(self.config.session, self.id, c_pk, s_pk))
        return wire.pack(self._header(Kind.ADVERTISE_KEYS), wire.pack_keys(c_pk, s_pk, sig))

    def share_keys(self, key_list: bytes) -> bytes:
        """Round 1: check the server's key list (every peer's signature included), share ``s_u^SK``
        and ``b_u``, seal a pair per client."""
        body = self._receive(key_list, Kind.KEY_LIST)
        entries = wire.unpack_key_list(body)
        ids = [i for i, _, _, _ in entries]
        keys = {i: (c, s) for i, c, s, _ in entries}
        t, session = self.config.threshold, self.config.session
        if not set(ids) <= set(self.config.clients):
            raise ProtocolViolation(f"client {self.id}: the key list names unregistered clients")
        if keys.get(self.id) != (_raw_public(self._c_sk), _raw_public(self._s_sk)):
            raise ProtocolViolation(f"client {self.id}: the key list does not carry my keys")
        all_keys = [k for pair in keys.values() for k in pair]
        if len(set(all_keys)) != len(all_keys):
            raise ProtocolViolation(f"client {self.id}: the key list repeats a public key")
        for v, c_pk, s_pk, sig in entries:  # all of them before any key is used: a list is all or nothing
            if v != self.id:
                _verify(
                    self.config.identity_keys[v],
                    sig,
                    keys_message(session, v, c_pk, s_pk),
                    f"client {self.id}: the keys of client {v} in the key list",
                )
        if len(ids) < t:
            raise self._abort(TooManyDropouts(f"client {self.id}: {len(ids)} clients left in round 1, t={t}"))
        agreements = {
            v: _exchange(self._c_sk, keys[v][0], f"client {v}'s c key") for v in ids if v != self.id
        }
        seed = self._rng(SEED_BYTES)
        s_shares = shamir.split(self._s_sk.private_bytes_raw(), len(ids), t, self._rng, xs=ids)
        b_shares = shamir.split(seed, len(ids), t, self._rng, xs=ids)
        mine = ids.index(self.id)
        own = (s_shares[mine], b_shares[mine])
        sealed = []
        for v, s_share, b_share in zip(ids, s_shares, b_shares, strict=True):
            if v == self.id:
                continue
            plain = (
                self.id.to_bytes(2, "big") + v.to_bytes(2, "big") + s_share.to_bytes() + b_share.to_bytes()
            )
            nonce = self._rng(wire.NONCE_BYTES)
            ct = _share_aead(agreements[v], session, self.id, v).encrypt(
                nonce, plain, _share_aad(session, self.id, v)
            )
            sealed.append((v, nonce + ct))
        self._keys, self._c_agreements, self._own, self._seed = keys, agreements, own, seed
        self._next = 2
        return wire.pack(self._header(Kind.ENCRYPTED_SHARES), wire.pack_sealed(sealed))

    def masked_input(self, forwarded: bytes, x: Ring) -> bytes:
        """Round 2: open the shares sent to me, mask ``x`` (a ``params``-long uint64 vector)."""
        p = self.config.params
        if not (isinstance(x, np.ndarray) and x.dtype == np.uint64 and x.shape == (p,)):
            raise SecAggConfigError(f"client {self.id}: the input must be a uint64 vector of length {p}")
        body = self._receive(forwarded, Kind.FORWARDED_SHARES)
        entries = wire.unpack_sealed(body, "FORWARDED_SHARES")
        t, session = self.config.threshold, self.config.session
        others = [v for v, _ in entries]
        if self.id in others or not set(others) <= set(self._keys):
            raise ProtocolViolation(f"client {self.id}: forwarded shares from clients outside round 1")
        u2 = tuple(sorted([*others, self.id]))
        if len(u2) < t:
            raise self._abort(TooManyDropouts(f"client {self.id}: {len(u2)} clients left in round 2, t={t}"))
        held: dict[int, tuple[shamir.Share, shamir.Share]] = {}
        for v, blob in entries:
            try:
                plain = _share_aead(self._c_agreements[v], session, v, self.id).decrypt(
                    blob[: wire.NONCE_BYTES], blob[wire.NONCE_BYTES :], _share_aad(session, v, self.id)
                )
            except InvalidTag as exc:
                raise ProtocolViolation(f"client {self.id}: shares from client {v} do not decrypt") from exc
            if plain[:4] != v.to_bytes(2, "big") + self.id.to_bytes(2, "big"):
                raise ProtocolViolation(f"client {self.id}: shares from client {v} name other clients")
            try:
                s_share = shamir.Share.from_bytes(plain[4 : 4 + shamir.SHARE_BYTES])
                b_share = shamir.Share.from_bytes(plain[4 + shamir.SHARE_BYTES :])
            except ShamirError as exc:
                raise ProtocolViolation(f"client {self.id}: bad share from client {v}: {exc}") from exc
            if any(s.x != self.id or s.threshold != t for s in (s_share, b_share)):
                raise ProtocolViolation(f"client {self.id}: share from client {v} is not for my point")
            held[v] = (s_share, b_share)
        masks = [(self_mask_key(self._seed, session, self.id), 1)]
        for v in others:
            agreement = _exchange(self._s_sk, self._keys[v][1], f"client {v}'s s key")
            masks.append((pair_mask_key(agreement, session, self.id, v), 1 if v < self.id else -1))
        y = np.empty(p, dtype=np.uint64)
        apply_masks(y, masks, base=x)
        self._held, self._u2, self._next = held, u2, 3
        return wire.pack(self._header(Kind.MASKED_INPUT), wire.pack_vector(y))

    def sign_survivors(self, announcement: bytes) -> bytes:
        """Round 3 (consistency check): check the survivor set ``U3`` and sign it; once only."""
        body = self._receive(announcement, Kind.SURVIVORS)
        survivors = wire.unpack_ids(body, "SURVIVORS")
        t = self.config.threshold
        if not set(survivors) <= set(self._u2):
            raise ProtocolViolation(f"client {self.id}: the survivor set names clients outside round 2")
        if self.id not in survivors:
            raise ProtocolViolation(f"client {self.id}: the survivor set leaves me out but asks me")
        if len(survivors) < t:
            raise self._abort(
                TooManyDropouts(f"client {self.id}: {len(survivors)} clients left in round 3, t={t}")
            )
        sig = self._identity.sign(survivors_message(self.config.session, survivors))
        self._u3, self._u3_signature, self._next = tuple(survivors), sig, 4
        return wire.pack(self._header(Kind.SURVIVORS_SIGNATURE), wire.pack_signature(sig))

    def unmask(self, request: bytes) -> bytes:
        """Round 4: given ``t`` survivors' signatures over the ``U3`` I signed, shares of ``b_v`` for
        the survivors and of ``s_v^SK`` for the dropped; once only."""
        body = self._receive(request, Kind.UNMASK_REQUEST)
        survivors, signatures = wire.unpack_unmask_request(body)
        t, u3 = self.config.threshold, self._u3
        if tuple(survivors) != u3:
            raise InconsistentSurvivors(
                f"client {self.id}: the unmasking request names a survivor set other than the one I signed"
            )
        signers = [v for v, _ in signatures]
        if not set(signers) <= set(u3):
            raise InconsistentSurvivors(f"client {self.id}: survivor-set signatures of clients outside it")
        if len(signers) < t:
            raise InconsistentSurvivors(
                f"client {self.id}: {len(signers)} signatures over the survivor set, t={t} needed"
            )
        message = survivors_message(self.config.session, u3)
        for v, sig in signatures:
            if v == self.id and sig == self._u3_signature:
                continue
            _verify(
                self.config.identity_keys[v], sig, message, f"client {self.id}: client {v}'s survivor set"
            )
        assert self._own is not None
        alive = set(u3)
        held = {**self._held, self.id: self._own}
        entries: list[tuple[int, ShareKind, bytes]] = []
        for v in self._u2:
            s_share, b_share = held[v]
            if v in alive:
                entries.append((v, ShareKind.SELF_MASK_SEED, b_share.to_bytes()))
            else:
                entries.append((v, ShareKind.MASK_KEY, s_share.to_bytes()))
        self._next = 5
        return wire.pack(self._header(Kind.UNMASK_SHARES), wire.pack_unmask(entries))


# --- server -------------------------------------------------------------------------------------


@dataclass
class _ServerState:
    keys: dict[int, tuple[bytes, bytes, bytes]] = field(default_factory=dict)  # U1: c_pk, s_pk, signature
    sealed: dict[int, dict[int, bytes]] = field(default_factory=dict)  # U2: sender -> receiver -> blob
    u1: tuple[int, ...] = ()
    u2: tuple[int, ...] = ()
    u3: tuple[int, ...] = ()
    u3_message: bytes = b""  # what the clients of U3 sign
    u4: tuple[int, ...] = ()
    current: tuple[int, ...] = ()  # the latest of U1, U2, U3 (U4 only decides who unmasks)
    masked: set[int] = field(default_factory=set)
    signatures: dict[int, bytes] = field(default_factory=dict)  # U4: signer -> signature over U3
    shares: dict[int, dict[int, shamir.Share]] = field(default_factory=dict)  # v -> holder -> share
    answered: set[int] = field(default_factory=set)


class SecAggServer:
    """The aggregator of one session. ``receive_*`` any number of times, then close the round."""

    def __init__(self, config: SecAggConfig) -> None:
        self.config = config
        self._round = 0  # round in progress; 5 = done, -1 = aborted
        self._st = _ServerState()
        self._acc = np.zeros(config.params, dtype=np.uint64)
        self._error: SecAggError | None = None

    # what the host may want to know
    @property
    def round(self) -> int:
        return self._round

    @property
    def survivors(self) -> tuple[int, ...]:
        """``U3``: the clients whose inputs are in the sum (fixed by ``announce_survivors``)."""
        return self._st.u3

    @property
    def signers(self) -> tuple[int, ...]:
        """``U4``: the survivors that signed ``U3``, asked to unmask (fixed by ``request_unmasking``)."""
        return self._st.u4

    @property
    def dropped(self) -> tuple[int, ...]:
        """Registered clients left out of the latest of ``U1``, ``U2``, ``U3`` (from round 2 on: the
        clients whose input is not in the sum)."""
        if not self._st.current:
            return ()
        kept = set(self._st.current)
        return tuple(c for c in self.config.clients if c not in kept)

    def _check(self, rnd: int) -> None:
        if self._round == -1:
            raise SessionAborted(f"server: the session was aborted ({self._error})")
        if self._round != rnd:
            raise WrongRound(f"server: round {rnd} is not in progress (round {self._round} is)")

    def _abort(self, left: int, rnd: int) -> TooManyDropouts:
        self._round = -1
        self._error = TooManyDropouts(
            f"server: only {left} clients left in round {rnd}, threshold is {self.config.threshold}; "
            "aborted, no sum"
        )
        return self._error

    def _open(
        self, data: bytes, kind: Kind, senders: Iterable[int], seen: Iterable[int]
    ) -> tuple[int, memoryview]:
        rnd = wire.ROUND_OF[kind]
        if self._round == -1:
            raise SessionAborted(f"server: the session was aborted ({self._error})")
        head, body = _open(data, self.config, SERVER, kind, self._round, senders)
        if head.sender in set(seen):
            raise DuplicateMessage(f"server: second {kind.name} from client {head.sender} in round {rnd}")
        return head.sender, body

    def _to(self, receiver: int, kind: Kind, body: bytes) -> bytes:
        return wire.pack(Header(kind, SERVER, receiver, self.config.session), body)

    def receive(self, data: bytes) -> None:
        """Dispatch a client message to the round in progress (for hosts that do not track rounds)."""
        if self._round == -1:
            raise SessionAborted(f"server: the session was aborted ({self._error})")
        handlers: dict[int, Callable[[bytes], None]] = {
            0: self.receive_keys,
            1: self.receive_shares,
            2: self.receive_masked_input,
            3: self.receive_survivor_signature,
            4: self.receive_unmasking,
        }
        if self._round not in handlers:
            raise WrongRound("server: the session is finished")
        handlers[self._round](data)

    # round 0
    def receive_keys(self, data: bytes) -> None:
        """A client's signed keys; a bad signature is refused here, so it cannot spoil the key list."""
        sender, body = self._open(data, Kind.ADVERTISE_KEYS, self.config.clients, self._st.keys)
        c_pk, s_pk, sig = wire.unpack_keys(body)
        _verify(
            self.config.identity_keys[sender],
            sig,
            keys_message(self.config.session, sender, c_pk, s_pk),
            f"server: the keys advertised by client {sender}",
        )
        self._st.keys[sender] = (c_pk, s_pk, sig)

    def broadcast_keys(self) -> dict[int, bytes]:
        """Close round 0: ``U1`` = clients that advertised keys; the key list goes to each of them."""
        self._check(0)
        u1 = tuple(sorted(self._st.keys))
        if len(u1) < self.config.threshold:
            raise self._abort(len(u1), 0)
        body = wire.pack_key_list([(u, *self._st.keys[u]) for u in u1])
        self._st.u1, self._st.current, self._round = u1, u1, 1
        return {u: self._to(u, Kind.KEY_LIST, body) for u in u1}

    # round 1
    def receive_shares(self, data: bytes) -> None:
        sender, body = self._open(data, Kind.ENCRYPTED_SHARES, self._st.u1, self._st.sealed)
        entries = wire.unpack_sealed(body, "ENCRYPTED_SHARES")
        if [v for v, _ in entries] != [v for v in self._st.u1 if v != sender]:
            raise ProtocolViolation(
                f"server: client {sender} did not seal shares for exactly the other U1 clients"
            )
        self._st.sealed[sender] = dict(entries)

    def forward_shares(self) -> dict[int, bytes]:
        """Close round 1: ``U2`` = clients that sent shares; each gets the pairs sealed for it."""
        self._check(1)
        u2 = tuple(sorted(self._st.sealed))
        if len(u2) < self.config.threshold:
            raise self._abort(len(u2), 1)
        out = {
            v: self._to(
                v, Kind.FORWARDED_SHARES, wire.pack_sealed([(u, self._st.sealed[u][v]) for u in u2 if u != v])
            )
            for v in u2
        }
        self._st.u2, self._st.current, self._round = u2, u2, 2
        self._st.sealed.clear()
        return out

    # round 2
    def receive_masked_input(self, data: bytes) -> None:
        sender, body = self._open(data, Kind.MASKED_INPUT, self._st.u2, self._st.masked)
        y = wire.unpack_vector(body, self.config.params)
        np.add(self._acc, y, out=self._acc)
        self._st.masked.add(sender)

    def announce_survivors(self) -> dict[int, bytes]:
        """Close round 2: ``U3`` = clients whose masked input arrived; it is final from here on, and
        goes to each of them to be signed."""
        self._check(2)
        u3 = tuple(sorted(self._st.masked))
        if len(u3) < self.config.threshold:
            raise self._abort(len(u3), 2)
        body = wire.pack_ids(u3)
        self._st.u3, self._st.current, self._round = u3, u3, 3
        self._st.u3_message = survivors_message(self.config.session, u3)
        return {u: self._to(u, Kind.SURVIVORS, body) for u in u3}

    # round 3
    def receive_survivor_signature(self, data: bytes) -> None:
        """A survivor's signature over ``U3``; one that does not verify is refused (never forwarded)."""
        sender, body = self._open(data, Kind.SURVIVORS_SIGNATURE, self._st.u3, self._st.signatures)
        sig = wire.unpack_signature(body, "SURVIVORS_SIGNATURE")
        _verify(
            self.config.identity_keys[sender],
            sig,
            self._st.u3_message,
            f"server: client {sender}'s signature over the survivor set",
        )
        self._st.signatures[sender] = sig

    def request_unmasking(self) -> dict[int, bytes]:
        """Close round 3: ``U4`` = survivors that signed ``U3``; each gets ``U3`` with ``t`` of the
        signatures (the lowest ids: enough to convince a client, and each costs it a verification)."""
        self._check(3)
        u4 = tuple(sorted(self._st.signatures))
        if len(u4) < self.config.threshold:
            raise self._abort(len(u4), 3)
        proof = [(v, self._st.signatures[v]) for v in u4[: self.config.threshold]]
        body = wire.pack_unmask_request(self._st.u3, proof)
        self._st.u4, self._round = u4, 4
        self._st.signatures.clear()
        return {u: self._to(u, Kind.UNMASK_REQUEST, body) for u in u4}

    # round 4
    def receive_unmasking(self, data: bytes) -> None:
        sender, body = self._open(data, Kind.UNMASK_SHARES, self._st.u4, self._st.answered)
        entries = wire.unpack_unmask(body)
        if [v for v, _, _ in entries] != list(self._st.u2):
            raise ProtocolViolation(f"server: client {sender} did not send one share for each U2 client")
        alive = set(self._st.u3)
        parsed: list[tuple[int, shamir.Share]] = []
        for v, kind, raw in entries:
            want = ShareKind.SELF_MASK_SEED if v in alive else ShareKind.MASK_KEY
            if kind != want:
                raise ProtocolViolation(
                    f"server: client {sender} sent a {kind.name} share for "
                    f"{'surviving' if v in alive else 'dropped'} client {v}; refused (would reveal both "
                    "secrets of one client)"
                )
            try:
                share = shamir.Share.from_bytes(raw)
            except ShamirError as exc:
                raise ProtocolViolation(f"server: bad share from client {sender}: {exc}") from exc
            if share.x != sender or share.threshold != self.config.threshold:
                raise ProtocolViolation(f"server: client {sender} sent a share for another point")
            parsed.append((v, share))
        for v, share in parsed:
            self._st.shares.setdefault(v, {})[sender] = share
        self._st.answered.add(sender)

    def aggregate(self) -> Ring:
        """Close round 4: rebuild ``b_u`` (u in U3) and ``s_v^SK`` (v in U2 \\ U3), remove the masks,
        return ``sum(x_u for u in U3) mod 2^64``. Fewer than ``t`` answers: :class:`TooManyDropouts`."""
        self._check(4)
        answered = len(self._st.answered)
        if answered < self.config.threshold:
            raise self._abort(answered, 4)
        session = self.config.session
        alive = set(self._st.u3)
        masks: list[tuple[bytes, int]] = []
        for u in self._st.u3:
            seed = _combine(self._st.shares[u].values(), f"the self-mask seed of client {u}")
            masks.append((self_mask_key(seed, session, u), -1))
        for v in self._st.u2:
            if v in alive:
                continue
            raw = _combine(self._st.shares[v].values(), f"the mask key of dropped client {v}")
            s_sk = X25519PrivateKey.from_private_bytes(raw)
            if _raw_public(s_sk) != self._st.keys[v][1]:
                raise ProtocolViolation(
                    f"server: the rebuilt mask key of client {v} does not match its public key"
                )
            for u in self._st.u3:
                agreement = _exchange(s_sk, self._st.keys[u][1], f"client {u}'s s key")
                # y_u carries +PRG(s_uv) if v < u, -PRG(s_uv) if v > u: subtract it
                masks.append((pair_mask_key(agreement, session, u, v), -1 if v < u else 1))
        apply_masks(self._acc, masks)
        self._round = 5
        self._st.shares.clear()
        return self._acc.copy()
