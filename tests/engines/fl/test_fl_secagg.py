from __future__ import annotations

import numpy as np
import pytest
from _fl_helpers import SESSION, Harness, config, identity, identity_keys
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from confide.crypto import Identity
from confide.engines.fl import secagg, shamir, wire
from confide.engines.fl.errors import (
    BadSignature,
    DuplicateMessage,
    InconsistentSurvivors,
    MalformedMessage,
    Misaddressed,
    NotEnoughShares,
    ProtocolViolation,
    SecAggConfigError,
    SecAggError,
    SessionAborted,
    TooManyDropouts,
    UnknownSender,
    WrongRound,
    WrongSession,
)
from confide.engines.fl.masks import prg, self_mask_key
from confide.engines.fl.secagg import SecAggClient, SecAggConfig, keys_message, survivors_message
from confide.engines.fl.wire import SERVER, Header, Kind, ShareKind

# --- correctness --------------------------------------------------------------------------------


def test_sum_is_exact_without_dropouts() -> None:
    h = Harness(n=5, params=257)
    h.through(3)
    total = h.round4()
    assert h.server.survivors == (1, 2, 3, 4, 5) and h.server.dropped == ()
    assert h.server.signers == (1, 2, 3, 4, 5)
    assert np.array_equal(total, h.plain_sum(h.config.clients))
    mean = h.codec.decode_mean(total, 5)
    want = np.mean([np.clip(v, -h.codec.clip, h.codec.clip) for v in h.floats.values()], axis=0)
    assert np.max(np.abs(mean - want)) <= 2**-25


def test_sum_is_exact_over_several_mask_chunks() -> None:
    h = Harness(n=3, params=70_001, seed=4)  # > 2 * masks.CHUNK words, not a multiple of it
    h.through(3)
    assert np.array_equal(h.round4(), h.plain_sum((1, 2, 3)))


def test_dropout_after_round1_removes_pairwise_masks_via_mask_keys() -> None:
    h = Harness(n=7, seed=1)  # t = 4
    h.round0()
    h.round1()
    announced = h.round2(drop=(2, 6))  # they shared their keys, but never send a masked input
    assert set(announced) == {1, 3, 4, 5, 7}
    assert wire.unpack_ids(wire.unpack(announced[1], 1 << 20)[1], "req") == [1, 3, 4, 5, 7]
    requests = h.round3()
    survivors, signatures = wire.unpack_unmask_request(wire.unpack(requests[1], 1 << 20)[1])
    assert survivors == [1, 3, 4, 5, 7] and [v for v, _ in signatures] == [1, 3, 4, 5]  # t = 4 of them
    total = h.round4()
    assert h.server.dropped == (2, 6)
    assert np.array_equal(total, h.plain_sum((1, 3, 4, 5, 7)))
    # what a survivor revealed: b-shares for survivors, s_sk-shares for the two dropped clients
    entries = wire.unpack_unmask(wire.unpack(h.sent[4][1], 1 << 20)[1])
    kinds = {v: k for v, k, _ in entries}
    assert kinds == {
        v: ShareKind.MASK_KEY if v in (2, 6) else ShareKind.SELF_MASK_SEED for v in (1, 2, 3, 4, 5, 6, 7)
    }


def test_dropouts_at_every_stage_below_the_threshold() -> None:
    h = Harness(n=12, seed=2)  # t = 7
    h.round0(drop=(12,))  # never advertised
    h.round1(drop=(11,))  # advertised keys, never shared
    h.round2(drop=(10,))  # shared, never sent its masked input
    requests = h.round3(drop=(9,))  # sent its masked input (counted), but never signed the survivor set
    assert set(requests) == {1, 2, 3, 4, 5, 6, 7, 8}  # only the signers are asked to unmask
    total = h.round4(drop=(1,))  # signed, but missed unmasking
    assert h.server.survivors == (1, 2, 3, 4, 5, 6, 7, 8, 9)
    assert h.server.signers == (1, 2, 3, 4, 5, 6, 7, 8)
    assert np.array_equal(total, h.plain_sum((1, 2, 3, 4, 5, 6, 7, 8, 9)))


@pytest.mark.parametrize("stage", [0, 1, 2, 3, 4])
def test_too_many_dropouts_aborts_without_a_sum(stage: int) -> None:
    h = Harness(n=5, seed=3)  # t = 3
    steps = [h.round0, h.round1, h.round2, h.round3, h.round4]
    for r in range(stage):
        steps[r]()
    with pytest.raises(TooManyDropouts, match="threshold is 3"):
        steps[stage](drop=(1, 2, 3))
    with pytest.raises(SessionAborted):
        h.server.aggregate()
    with pytest.raises(SessionAborted):
        h.server.receive(h.sent[0][4])


def test_threshold_rule() -> None:
    assert config(SESSION, (1, 2, 3, 4, 5), 10).threshold == 3
    assert config(SESSION, tuple(range(1, 11)), 10).threshold == 6
    assert config(SESSION, (1, 2), 10).threshold == 2
    with pytest.raises(SecAggConfigError, match="n/2 < t"):
        config(SESSION, (1, 2, 3, 4), 10, threshold=2)
    with pytest.raises(SecAggConfigError, match="n/2 < t"):
        config(SESSION, (1, 2, 3), 10, threshold=4)
    with pytest.raises(SecAggConfigError, match="distinct"):
        SecAggConfig(SESSION, (1, 1, 2), 10, identity_keys=identity_keys((1, 2)))
    with pytest.raises(SecAggConfigError, match="at least 2"):
        config(SESSION, (1,), 10)
    with pytest.raises(SecAggConfigError, match="session"):
        config(b"short", (1, 2), 10)


def test_identity_keys_must_match_the_clients() -> None:
    with pytest.raises(TypeError):
        SecAggConfig(SESSION, (1, 2, 3), 10)  # type: ignore[call-arg]  # the keys are required
    with pytest.raises(SecAggConfigError, match="one public key per registered client"):
        SecAggConfig(SESSION, (1, 2, 3), 10, identity_keys=identity_keys((1, 2)))
    with pytest.raises(SecAggConfigError, match="one public key per registered client"):
        SecAggConfig(SESSION, (1, 2, 3), 10, identity_keys=identity_keys((1, 2, 3, 4)))
    with pytest.raises(SecAggConfigError, match="share one identity key"):
        SecAggConfig(
            SESSION, (1, 2, 3), 10, identity_keys={**identity_keys((1, 2)), 3: identity(1).public_key}
        )
    with pytest.raises(SecAggConfigError, match="PublicKey"):
        SecAggConfig(
            SESSION,
            (1, 2, 3),
            10,
            identity_keys={**identity_keys((1, 2)), 3: identity(3).public_key.raw()},  # type: ignore[dict-item]
        )
    cfg = config(SESSION, (1, 2, 3), 10)
    assert dict(cfg.identity_keys) == identity_keys((1, 2, 3))
    with pytest.raises(SecAggConfigError, match="not the one registered"):
        SecAggClient(cfg, 1, identity(2))
    with pytest.raises(SecAggConfigError, match="not the one registered"):
        SecAggClient(cfg, 1, Identity.generate())


# --- privacy: the server cannot unmask one client ----------------------------------------------


def _b_shares(h: Harness, v: int, holders: tuple[int, ...]) -> list[shamir.Share]:
    out = []
    for u in holders:
        for w, kind, raw in wire.unpack_unmask(wire.unpack(h.sent[4][u], 1 << 20)[1]):
            if w == v:
                assert kind == ShareKind.SELF_MASK_SEED
                out.append(shamir.Share.from_bytes(raw))
    return out


def test_fewer_than_t_shares_leave_the_input_masked() -> None:
    h = Harness(n=5, seed=5)  # t = 3
    h.through(3)
    for u in (1, 2):  # only t - 1 = 2 clients answer
        h.server.receive_unmasking(h.clients[u].unmask(h.got[4][u]))
    h.sent[4] = {u: h.clients[u].unmask(h.got[4][u]) for u in (3, 4)}  # collected, not given to the server
    with pytest.raises(TooManyDropouts):
        h.server.aggregate()

    seed_4 = h.clients[4]._seed
    y_4 = wire.unpack_vector(wire.unpack(h.sent[2][4], 1 << 20)[1], h.config.params)
    two = _b_shares(h, 4, (3, 4))  # t - 1 shares of b_4
    with pytest.raises(NotEnoughShares, match="threshold is 3"):
        shamir.combine(two)
    wrong = shamir.interpolate_at_zero(two).to_bytes(33, "big")[1:]
    assert wrong != seed_4
    unmasked = y_4 - prg(self_mask_key(wrong, SESSION, 4), h.config.params)
    assert not np.array_equal(unmasked, h.x[4])
    # even t shares of b_4 (all a curious server can get for a survivor) leave the pairwise masks on
    h.sent[4].update({u: h.clients[u].unmask(h.got[4][u]) for u in (5,)})
    right = shamir.combine(_b_shares(h, 4, (3, 4, 5)))
    assert right == seed_4
    unmasked = y_4 - prg(self_mask_key(right, SESSION, 4), h.config.params)
    assert np.count_nonzero(unmasked == h.x[4]) < 3


def test_server_refuses_a_share_of_the_wrong_kind() -> None:
    h = Harness(n=5, seed=6)
    h.round0()
    h.round1()
    h.round2(drop=(5,))
    h.round3()
    client = h.clients[1]
    # a survivor's mask-key share, or a dropped client's self-mask share, would give both secrets
    for v, kind in ((2, ShareKind.MASK_KEY), (5, ShareKind.SELF_MASK_SEED)):
        entries = []
        for w in (1, 2, 3, 4, 5):
            s_share, b_share = client._own if w == 1 else client._held[w]
            k = ShareKind.MASK_KEY if w == 5 else ShareKind.SELF_MASK_SEED
            if w == v:
                k = kind
            entries.append((w, k, (s_share if k == ShareKind.MASK_KEY else b_share).to_bytes()))
        forged = wire.pack(Header(Kind.UNMASK_SHARES, 1, SERVER, SESSION), wire.pack_unmask(entries))
        with pytest.raises(ProtocolViolation, match="would reveal both"):
            h.server.receive_unmasking(forged)
    h.server.receive_unmasking(client.unmask(h.got[4][1]))  # the honest answer is still taken


def _survivors(to: int, ids: list[int]) -> bytes:
    return wire.pack(Header(Kind.SURVIVORS, SERVER, to, SESSION), wire.pack_ids(ids))


def _request(to: int, ids: list[int], signatures: list[tuple[int, bytes]]) -> bytes:
    return wire.pack(
        Header(Kind.UNMASK_REQUEST, SERVER, to, SESSION), wire.pack_unmask_request(ids, signatures)
    )


def _sig(u: int, ids: list[int]) -> bytes:
    return identity(u).sign(survivors_message(SESSION, ids))


def test_client_signs_one_survivor_set_and_answers_one_unmasking_request_only() -> None:
    h = Harness(n=5, seed=7)
    h.through(2)
    client = h.clients[3]
    signed = client.sign_survivors(h.got[3][3])
    with pytest.raises(WrongRound):  # asked to sign a second set, now told 2 and 5 dropped
        client.sign_survivors(_survivors(3, [1, 3, 4]))
    h.server.receive_survivor_signature(signed)
    for u in (1, 2, 4):
        h.server.receive_survivor_signature(h.clients[u].sign_survivors(h.got[3][u]))
    requests = h.server.request_unmasking()
    assert set(requests) == {1, 2, 3, 4}  # 5 never signed: it is not asked (its input is still summed)
    client.unmask(requests[3])
    other = _request(3, [1, 3, 4], [(u, _sig(u, [1, 3, 4])) for u in (1, 3, 4)])
    with pytest.raises(WrongRound):  # the same client asked again, now told 2 and 5 dropped
        client.unmask(other)


def test_client_refuses_bad_survivor_sets() -> None:
    h = Harness(n=5, seed=8)
    h.through(2)
    client = h.clients[3]
    with pytest.raises(ProtocolViolation, match="leaves me out"):
        client.sign_survivors(_survivors(3, [1, 2, 4]))
    h2 = Harness(n=5, seed=8)
    h2.round0()
    h2.round1(drop=(5,))
    h2.round2()
    with pytest.raises(ProtocolViolation, match="outside round 2"):
        h2.clients[3].sign_survivors(_survivors(3, [1, 2, 3, 5]))  # 5 never shared its keys
    client.sign_survivors(h.got[3][3])  # a refused set does not change the client's state
    h3 = Harness(n=5, seed=8)
    h3.through(2)
    with pytest.raises(TooManyDropouts):  # t = 3: a set of 2 would have it reveal s_sk of 3 clients of 5
        h3.clients[3].sign_survivors(_survivors(3, [1, 3]))
    with pytest.raises(SessionAborted):
        h3.clients[3].sign_survivors(h3.got[3][3])


# --- refusals -----------------------------------------------------------------------------------


def test_replayed_old_round_message_is_refused() -> None:
    h = Harness(n=5, seed=9)
    h.round0()
    h.round1()
    old = h.sent[0][2]  # client 2's round-0 keys, replayed during round 2
    with pytest.raises(WrongRound, match="replayed or late round-0"):
        h.server.receive_masked_input(old)
    with pytest.raises(WrongRound, match="replayed or late round-0"):
        h.server.receive(old)
    with pytest.raises(WrongRound, match="replayed or late round-1"):  # server's old key list to client 2
        h.clients[2].masked_input(h.got[1][2], h.x[2])
    h.round2()
    h.round3()
    with pytest.raises(WrongRound, match="replayed or late round-3"):  # the survivor set, again
        h.clients[2].unmask(h.got[3][2])
    with pytest.raises(WrongRound, match="replayed or late round-3"):  # client 2's signature, again
        h.server.receive_unmasking(h.sent[3][2])
    assert np.array_equal(h.round4(), h.plain_sum(h.config.clients))
    with pytest.raises(WrongRound):  # a replayed masked input after the sum
        h.server.receive(h.sent[2][1])


def test_message_of_another_session_is_refused() -> None:
    h = Harness(n=3, seed=10)
    other = config(bytes(16), h.config.clients, h.config.params)
    with pytest.raises(WrongSession):
        h.server.receive_keys(SecAggClient(other, 1, identity(1)).advertise_keys())


def test_unknown_sender_is_refused() -> None:
    h = Harness(n=4, seed=11)
    stranger = wire.pack(Header(Kind.ADVERTISE_KEYS, 99, SERVER, SESSION), bytes(range(64)))
    with pytest.raises(UnknownSender, match="not a client of this session"):
        h.server.receive_keys(stranger)
    from_server_id = wire.pack(Header(Kind.ADVERTISE_KEYS, SERVER, SERVER, SESSION), bytes(range(64)))
    with pytest.raises(UnknownSender):
        h.server.receive_keys(from_server_id)
    h.round0(drop=(4,))
    h.round1()
    late = wire.pack(Header(Kind.MASKED_INPUT, 4, SERVER, SESSION), wire.pack_vector(h.x[4]))
    with pytest.raises(UnknownSender, match="does not take part in round 2"):
        h.server.receive_masked_input(late)
    # a client only listens to the server
    fake = wire.pack(Header(Kind.UNMASK_REQUEST, 2, 1, SESSION), wire.pack_ids([1, 2, 3]))
    h.round2()
    with pytest.raises(UnknownSender, match="not the server"):
        h.clients[1].unmask(fake)


def test_misaddressed_message_is_refused() -> None:
    h = Harness(n=3, seed=12)
    key_lists = h.round0()
    with pytest.raises(Misaddressed):
        h.clients[3].share_keys(key_lists[2])
    wrong_receiver = wire.pack(Header(Kind.ENCRYPTED_SHARES, 1, 2, SESSION), wire.pack_sealed([]))
    with pytest.raises(Misaddressed):
        h.server.receive_shares(wrong_receiver)


def test_malformed_and_oversized_vectors_are_refused() -> None:
    h = Harness(n=3, params=100, seed=13)
    h.round0()
    h.round1()
    p = h.config.params

    def masked(u: int, body: bytes) -> bytes:
        return wire.pack(Header(Kind.MASKED_INPUT, u, SERVER, SESSION), body)

    good = h.clients[1].masked_input(h.got[2][1], h.x[1])
    cases = {
        "oversized vector": masked(1, bytes(8 * (p + 1))),
        "short vector": masked(1, bytes(8 * (p - 1))),
        "not whole words": masked(1, bytes(8 * p - 3)),
        "truncated": good[:-1],
        "trailing": good + b"\0",
        "header only": good[: wire.HEADER_BYTES - 1],
        "bad magic": b"XXXX" + good[4:],
        "bad version": good[:4] + b"\x01" + good[5:],  # version 1: unsigned keys, no consistency round
        "unknown kind": good[:5] + b"\x0a" + good[6:],
        "kind/round mismatch": good[:6] + b"\x00" + good[7:],
        "oversized message": good + bytes(h.config.max_message_bytes),
    }
    for name, data in cases.items():
        with pytest.raises(MalformedMessage):
            h.server.receive_masked_input(data)
            pytest.fail(name)
    with pytest.raises(SecAggConfigError, match="uint64 vector of length"):
        h.clients[2].masked_input(h.got[2][2], h.x[2][:-1])
    with pytest.raises(SecAggConfigError):
        h.clients[2].masked_input(h.got[2][2], h.x[2].astype(np.int64))
    h.server.receive_masked_input(good)
    for u in (2, 3):
        h.server.receive_masked_input(h.clients[u].masked_input(h.got[2][u], h.x[u]))
    h.got[3] = h.server.announce_survivors()
    h.round3()
    assert np.array_equal(h.round4(), h.plain_sum((1, 2, 3)))


def test_duplicate_submission_is_refused_and_not_counted_twice() -> None:
    h = Harness(n=3, seed=14)
    keys = {u: c.advertise_keys() for u, c in h.clients.items()}
    for m in keys.values():
        h.server.receive_keys(m)
    with pytest.raises(DuplicateMessage):
        h.server.receive_keys(keys[1])
    h.got[1] = h.server.broadcast_keys()
    with pytest.raises(WrongRound):  # the same bytes once round 0 is closed
        h.server.receive_keys(keys[1])
    shares = {u: h.clients[u].share_keys(m) for u, m in h.got[1].items()}
    for m in shares.values():
        h.server.receive_shares(m)
    with pytest.raises(DuplicateMessage):
        h.server.receive_shares(shares[2])
    h.got[2] = h.server.forward_shares()
    h.round2()
    signed = {u: h.clients[u].sign_survivors(m) for u, m in h.got[3].items()}
    h.server.receive_survivor_signature(signed[3])
    with pytest.raises(DuplicateMessage):
        h.server.receive_survivor_signature(signed[3])
    for u in (1, 2):
        h.server.receive_survivor_signature(signed[u])
    h.got[4] = h.server.request_unmasking()
    h.sent[4] = {u: h.clients[u].unmask(m) for u, m in h.got[4].items()}
    h.server.receive_unmasking(h.sent[4][1])
    with pytest.raises(DuplicateMessage):
        h.server.receive_unmasking(h.sent[4][1])
    for u in (2, 3):
        h.server.receive_unmasking(h.sent[4][u])
    assert np.array_equal(h.server.aggregate(), h.plain_sum((1, 2, 3)))


def test_duplicate_masked_input_is_not_added_twice() -> None:
    h = Harness(n=3, seed=15)
    h.round0()
    h.round1()
    msgs = {u: h.clients[u].masked_input(m, h.x[u]) for u, m in h.got[2].items()}
    for m in msgs.values():
        h.server.receive_masked_input(m)
    with pytest.raises(DuplicateMessage):
        h.server.receive_masked_input(msgs[2])
    h.got[3] = h.server.announce_survivors()
    h.round3()
    assert np.array_equal(h.round4(), h.plain_sum((1, 2, 3)))


def test_tampered_sealed_shares_and_key_lists_are_refused() -> None:
    h = Harness(n=3, seed=16)
    key_lists = h.round0()
    entries = wire.unpack_key_list(wire.unpack(key_lists[1], 1 << 20)[1])
    same_keys = [(i, entries[0][1], entries[0][2], g) if i == 2 else (i, c, s, g) for i, c, s, g in entries]
    forged = wire.pack(Header(Kind.KEY_LIST, SERVER, 1, SESSION), wire.pack_key_list(same_keys))
    with pytest.raises(ProtocolViolation, match="repeats a public key"):
        h.clients[1].share_keys(forged)
    not_mine = [(i, s, c, g) if i == 1 else (i, c, s, g) for i, c, s, g in entries]
    forged = wire.pack(Header(Kind.KEY_LIST, SERVER, 1, SESSION), wire.pack_key_list(not_mine))
    with pytest.raises(ProtocolViolation, match="my keys"):
        h.clients[1].share_keys(forged)
    short = wire.pack(Header(Kind.KEY_LIST, SERVER, 1, SESSION), wire.pack_key_list(entries[:1]))
    with pytest.raises(TooManyDropouts):
        h.clients[1].share_keys(short)
    with pytest.raises(SessionAborted):  # a client that saw too few peers stops for good
        h.clients[1].share_keys(key_lists[1])

    h = Harness(n=3, seed=16)
    h.round0()
    forwarded = h.round1()
    data = bytearray(forwarded[2])
    data[-1] ^= 1  # last byte of the GCM tag of the pair sealed for client 2
    with pytest.raises(ProtocolViolation, match="do not decrypt"):
        h.clients[2].masked_input(bytes(data), h.x[2])
    swapped = wire.unpack_sealed(wire.unpack(forwarded[2], 1 << 20)[1], "f")
    relabeled = wire.pack(
        Header(Kind.FORWARDED_SHARES, SERVER, 2, SESSION),
        wire.pack_sealed([(1, swapped[1][1]), (3, swapped[0][1])]),
    )
    with pytest.raises(ProtocolViolation, match="do not decrypt"):
        h.clients[2].masked_input(relabeled, h.x[2])
    h.clients[2].masked_input(forwarded[2], h.x[2])  # the genuine message still works


def test_every_refusal_is_a_secagg_error() -> None:
    for cls in (
        BadSignature,
        DuplicateMessage,
        InconsistentSurvivors,
        MalformedMessage,
        Misaddressed,
        ProtocolViolation,
        SessionAborted,
        TooManyDropouts,
        UnknownSender,
        WrongRound,
        WrongSession,
    ):
        assert issubclass(cls, SecAggError)


# --- active server: signed keys -----------------------------------------------------------------


def _key_list(to: int, entries: list[tuple[int, bytes, bytes, bytes]]) -> bytes:
    return wire.pack(Header(Kind.KEY_LIST, SERVER, to, SESSION), wire.pack_key_list(entries))


def test_substituted_key_is_refused_before_any_share_is_sealed(monkeypatch: pytest.MonkeyPatch) -> None:
    h = Harness(n=5, seed=17)
    key_lists = h.round0()
    entries = wire.unpack_key_list(wire.unpack(key_lists[1], 1 << 20)[1])
    evil_c = X25519PrivateKey.generate().public_key().public_bytes_raw()  # the server's own key
    evil_s = X25519PrivateKey.generate().public_key().public_bytes_raw()
    # the server cannot re-sign for client 3: it keeps 3's signature, or signs with an identity of its own
    evil = Identity.generate()
    substituted = {
        "c key, 3's signature": [(i, evil_c, s, g) if i == 3 else (i, c, s, g) for i, c, s, g in entries],
        "s key, 3's signature": [(i, c, evil_s, g) if i == 3 else (i, c, s, g) for i, c, s, g in entries],
        "c key, server's signature": [
            (i, evil_c, s, evil.sign(keys_message(SESSION, 3, evil_c, s))) if i == 3 else (i, c, s, g)
            for i, c, s, g in entries
        ],
    }
    sealed_for: list[tuple[int, int]] = []
    real_aead = secagg._share_aead

    def spy(agreement: bytes, session: bytes, sender: int, receiver: int) -> object:
        sealed_for.append((sender, receiver))
        return real_aead(agreement, session, sender, receiver)

    monkeypatch.setattr(secagg, "_share_aead", spy)
    for name, forged in substituted.items():
        for u in (1, 2, 4, 5):
            with pytest.raises(BadSignature, match=f"client {u}: the keys of client 3"):
                h.clients[u].share_keys(_key_list(u, forged))
                pytest.fail(name)
        with pytest.raises(ProtocolViolation, match="my keys"):  # and 3 does not find its own keys
            h.clients[3].share_keys(_key_list(3, forged))
    assert sealed_for == []  # nothing was sealed, to the substituted key or any other
    for u, c in h.clients.items():
        assert c._next == 1 and c._c_agreements == {} and c._own is None, u
    # the genuine list still works: a refusal leaves the clients as they were
    h.round1()
    assert len(sealed_for) == 5 * 4
    h.round2()
    h.round3()
    assert np.array_equal(h.round4(), h.plain_sum(h.config.clients))


def test_missing_or_forged_signature_in_the_key_list_is_refused() -> None:
    h = Harness(n=4, seed=18)
    key_lists = h.round0()
    entries = wire.unpack_key_list(wire.unpack(key_lists[1], 1 << 20)[1])
    sig_of = {i: g for i, _, _, g in entries}

    def with_sig(v: int, sig: bytes) -> list[tuple[int, bytes, bytes, bytes]]:
        return [(i, c, s, sig if i == v else g) for i, c, s, g in entries]

    flipped = bytearray(sig_of[2])
    flipped[5] ^= 0x10
    cases = {
        "missing": (with_sig(2, b""), "signature missing"),
        "another client's signature": (with_sig(2, sig_of[4]), "does not verify"),
        "bit flipped": (with_sig(2, bytes(flipped)), "does not verify"),
        "truncated": (with_sig(2, sig_of[2][:-1]), "does not verify"),
        "too long": (with_sig(2, sig_of[2] + b"\0"), "does not verify"),
        "signed by 2 for another session": (
            with_sig(2, identity(2).sign(keys_message(bytes(16), 2, entries[1][1], entries[1][2]))),
            "does not verify",
        ),
        "signed by 2 as client 4": (
            with_sig(4, identity(2).sign(keys_message(SESSION, 4, entries[3][1], entries[3][2]))),
            "does not verify",
        ),
    }
    for name, (forged, why) in cases.items():
        with pytest.raises(BadSignature, match=why):
            h.clients[1].share_keys(_key_list(1, forged))
            pytest.fail(name)
    h.round1()  # the genuine lists are taken
    h.round2()
    h.round3()
    assert np.array_equal(h.round4(), h.plain_sum(h.config.clients))


def test_server_refuses_advertised_keys_that_are_not_signed_by_their_client() -> None:
    h = Harness(n=3, seed=19)
    genuine = h.clients[1].advertise_keys()
    c_pk, s_pk, sig = wire.unpack_keys(wire.unpack(genuine, 1 << 20)[1])

    def advert(body: bytes) -> bytes:
        return wire.pack(Header(Kind.ADVERTISE_KEYS, 1, SERVER, SESSION), body)

    other_session = identity(1).sign(keys_message(bytes(16), 1, c_pk, s_pk))  # replayed from another run
    for forged, why in (
        (advert(wire.pack_keys(c_pk, s_pk, b"")), "missing"),
        (advert(wire.pack_keys(s_pk, c_pk, sig)), "does not verify"),
        (
            advert(wire.pack_keys(c_pk, s_pk, identity(2).sign(keys_message(SESSION, 1, c_pk, s_pk)))),
            "verify",
        ),
        (advert(wire.pack_keys(c_pk, s_pk, other_session)), "does not verify"),
    ):
        with pytest.raises(BadSignature, match=why):
            h.server.receive_keys(forged)
    body = genuine[wire.HEADER_BYTES :]
    for bad, why in (
        (body[:-1], "truncated"),
        (body + b"\0", "trailing"),
        (body[:64] + b"\xff" + body[65:], "truncated"),
    ):
        with pytest.raises(MalformedMessage, match=why):
            h.server.receive_keys(advert(bad))
    h.server.receive_keys(genuine)  # refusals left no trace: the genuine one is no duplicate
    for u in (2, 3):
        h.server.receive_keys(h.clients[u].advertise_keys())
    assert set(h.server.broadcast_keys()) == {1, 2, 3}


# --- active server: the survivor-set consistency round -------------------------------------------


def test_a_survivor_set_that_differs_from_the_one_the_others_signed_is_refused() -> None:
    h = Harness(n=5, seed=20)  # t = 3
    h.through(2)
    everyone = [1, 2, 3, 4, 5]
    # the server tells client 1 that 5 dropped (to get 1's share of s_5^SK), the others that all stayed
    lie = [1, 2, 3, 4]
    signed_lie = h.clients[1].sign_survivors(_survivors(1, lie))
    with pytest.raises(BadSignature, match="client 1's signature over the survivor set"):
        h.server.receive_survivor_signature(signed_lie)  # an honest server notices too
    for u in (2, 3, 4, 5):
        h.server.receive_survivor_signature(h.clients[u].sign_survivors(h.got[3][u]))
    honest = h.server.request_unmasking()  # U3 = all five, with the signatures of 2, 3, 4
    good_sigs = [(u, _sig(u, everyone)) for u in (2, 3, 4)]
    own = wire.unpack_signature(wire.unpack(signed_lie, 1 << 20)[1], "s")
    refusals = {
        "the set the others signed": (_request(1, everyone, good_sigs), InconsistentSurvivors, "other than"),
        "its own set, the others' signatures": (_request(1, lie, good_sigs), BadSignature, "does not verify"),
        "its own set, only its own signature": (_request(1, lie, [(1, own)]), InconsistentSurvivors, "t=3"),
        "its own set, its signature copied": (
            _request(1, lie, [(1, own), (2, own), (3, own)]),
            BadSignature,
            "client 2's survivor set",
        ),
        "its own set, a signature missing": (
            _request(1, lie, [(1, own), (2, _sig(2, lie)), (3, b"")]),
            BadSignature,
            "missing",
        ),
    }
    for name, (request, cls, why) in refusals.items():
        with pytest.raises(cls, match=why):
            h.clients[1].unmask(request)
            pytest.fail(name)
    assert h.clients[1]._next == 4  # client 1 revealed nothing
    # the others, shown the set they signed, answer; the sum is over all five
    for u in (2, 3, 4, 5):
        h.server.receive_unmasking(h.clients[u].unmask(honest[u]))
    assert np.array_equal(h.server.aggregate(), h.plain_sum(everyone))


def test_the_unmasking_request_needs_t_valid_signatures_of_survivors() -> None:
    h = Harness(n=5, seed=21)  # t = 3
    h.round0()
    h.round1()
    h.round2(drop=(5,))  # U3 = 1..4, 5 is in U2 only
    h.round3()
    u3 = [1, 2, 3, 4]
    refusals = {
        "two signatures": (_request(1, u3, [(u, _sig(u, u3)) for u in (2, 3)]), InconsistentSurvivors),
        "a signer outside U3": (
            _request(1, u3, [(u, _sig(u, u3)) for u in (2, 3, 5)]),
            InconsistentSurvivors,
        ),
        "signatures over another session's set": (
            _request(1, u3, [(u, identity(u).sign(survivors_message(bytes(16), u3))) for u in (2, 3, 4)]),
            BadSignature,
        ),
        "signatures over the set with 5": (
            _request(1, u3, [(u, _sig(u, [1, 2, 3, 4, 5])) for u in (2, 3, 4)]),
            BadSignature,
        ),
        "keys-round signature reused": (
            _request(
                1,
                u3,
                [(u, identity(u).sign(keys_message(SESSION, u, bytes(32), bytes(32)))) for u in (2, 3, 4)],
            ),
            BadSignature,
        ),
    }
    for name, (request, cls) in refusals.items():
        with pytest.raises(cls):
            h.clients[1].unmask(request)
            pytest.fail(name)
    assert np.array_equal(h.round4(), h.plain_sum(u3))


def test_server_refuses_a_forged_survivor_signature() -> None:
    h = Harness(n=3, seed=22)
    h.through(2)
    genuine = {u: h.clients[u].sign_survivors(h.got[3][u]) for u in (1, 2, 3)}
    sig_2 = wire.unpack_signature(wire.unpack(genuine[2], 1 << 20)[1], "s")

    def signature_from(u: int, sig: bytes) -> bytes:
        return wire.pack(Header(Kind.SURVIVORS_SIGNATURE, u, SERVER, SESSION), wire.pack_signature(sig))

    with pytest.raises(BadSignature, match="client 1's"):  # 2's signature passed off as 1's
        h.server.receive_survivor_signature(signature_from(1, sig_2))
    with pytest.raises(BadSignature, match="missing"):
        h.server.receive_survivor_signature(signature_from(1, b""))
    trailing = wire.pack(
        Header(Kind.SURVIVORS_SIGNATURE, 1, SERVER, SESSION), genuine[1][wire.HEADER_BYTES :], b"\0"
    )
    with pytest.raises(MalformedMessage, match="trailing"):
        h.server.receive_survivor_signature(trailing)
    for u in (1, 2, 3):
        h.server.receive_survivor_signature(genuine[u])
    h.got[4] = h.server.request_unmasking()
    assert np.array_equal(h.round4(), h.plain_sum((1, 2, 3)))


def test_signature_fields_parse_strictly() -> None:
    sig = bytes(range(64))
    body = wire.pack_unmask_request([1, 3, 4], [(1, sig), (4, b"")])
    assert wire.unpack_unmask_request(memoryview(body)) == ([1, 3, 4], [(1, sig), (4, b"")])
    unsorted = wire.pack_unmask_request([1, 3, 4], [(4, sig), (1, sig)])
    repeated = wire.pack_unmask_request([1, 3, 3], [(1, sig)])
    for bad, why in (
        (body[:-1], "truncated"),
        (body + b"\0", "trailing"),
        (body[:-1] + b"\x01", "truncated"),  # the last (empty) signature claims a byte that is not there
        (unsorted, "signers: ids not strictly increasing"),
        (repeated, "survivors: ids not strictly increasing"),
    ):
        with pytest.raises(MalformedMessage, match=why):
            wire.unpack_unmask_request(memoryview(bad))
    with pytest.raises(MalformedMessage, match="at most 255"):
        wire.pack_signature(bytes(256))
    key_list = wire.pack_key_list([(2, bytes(32), bytes(32), sig), (1, bytes(32), bytes(32), sig)])
    with pytest.raises(MalformedMessage, match="KEY_LIST: ids not strictly increasing"):
        wire.unpack_key_list(memoryview(key_list))
    with pytest.raises(MalformedMessage, match="KEY_LIST: truncated"):
        wire.unpack_key_list(memoryview(key_list[:-1]))
