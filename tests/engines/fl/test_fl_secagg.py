from __future__ import annotations

import numpy as np
import pytest
from _fl_helpers import SESSION, Harness

from confide.engines.fl import shamir, wire
from confide.engines.fl.errors import (
    DuplicateMessage,
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
from confide.engines.fl.secagg import SecAggClient, SecAggConfig
from confide.engines.fl.wire import SERVER, Header, Kind, ShareKind

# --- correctness --------------------------------------------------------------------------------


def test_sum_is_exact_without_dropouts() -> None:
    h = Harness(n=5, params=257)
    h.round0()
    h.round1()
    h.round2()
    total = h.round3()
    assert h.server.survivors == (1, 2, 3, 4, 5) and h.server.dropped == ()
    assert np.array_equal(total, h.plain_sum(h.config.clients))
    mean = h.codec.decode_mean(total, 5)
    want = np.mean([np.clip(v, -h.codec.clip, h.codec.clip) for v in h.floats.values()], axis=0)
    assert np.max(np.abs(mean - want)) <= 2**-25


def test_sum_is_exact_over_several_mask_chunks() -> None:
    h = Harness(n=3, params=70_001, seed=4)  # > 2 * masks.CHUNK words, not a multiple of it
    h.round0()
    h.round1()
    h.round2()
    assert np.array_equal(h.round3(), h.plain_sum((1, 2, 3)))


def test_dropout_after_round1_removes_pairwise_masks_via_mask_keys() -> None:
    h = Harness(n=7, seed=1)  # t = 4
    h.round0()
    h.round1()
    request = h.round2(drop=(2, 6))  # they shared their keys, but never send a masked input
    assert set(request) == {1, 3, 4, 5, 7}
    assert wire.unpack_ids(wire.unpack(request[1], 1 << 20)[1], "req") == [1, 3, 4, 5, 7]
    total = h.round3()
    assert h.server.dropped == (2, 6)
    assert np.array_equal(total, h.plain_sum((1, 3, 4, 5, 7)))
    # what a survivor revealed: b-shares for survivors, s_sk-shares for the two dropped clients
    entries = wire.unpack_unmask(wire.unpack(h.sent[3][1], 1 << 20)[1])
    kinds = {v: k for v, k, _ in entries}
    assert kinds == {
        v: ShareKind.MASK_KEY if v in (2, 6) else ShareKind.SELF_MASK_SEED for v in (1, 2, 3, 4, 5, 6, 7)
    }


def test_dropouts_at_every_stage_below_the_threshold() -> None:
    h = Harness(n=10, seed=2)  # t = 6
    h.round0(drop=(10,))  # never advertised
    h.round1(drop=(9,))  # advertised keys, never shared
    h.round2(drop=(8,))  # shared, never sent its masked input
    total = h.round3(drop=(1,))  # sent its masked input (counted), but missed unmasking
    assert h.server.survivors == (1, 2, 3, 4, 5, 6, 7)
    assert np.array_equal(total, h.plain_sum((1, 2, 3, 4, 5, 6, 7)))


@pytest.mark.parametrize("stage", [0, 1, 2, 3])
def test_too_many_dropouts_aborts_without_a_sum(stage: int) -> None:
    h = Harness(n=5, seed=3)  # t = 3
    steps = [h.round0, h.round1, h.round2, h.round3]
    for r in range(stage):
        steps[r]()
    with pytest.raises(TooManyDropouts, match="threshold is 3"):
        steps[stage](drop=(1, 2, 3))
    with pytest.raises(SessionAborted):
        h.server.aggregate()
    with pytest.raises(SessionAborted):
        h.server.receive(h.sent[0][4])


def test_threshold_rule() -> None:
    assert SecAggConfig(SESSION, (1, 2, 3, 4, 5), 10).threshold == 3
    assert SecAggConfig(SESSION, tuple(range(1, 11)), 10).threshold == 6
    assert SecAggConfig(SESSION, (1, 2), 10).threshold == 2
    with pytest.raises(SecAggConfigError, match="n/2 < t"):
        SecAggConfig(SESSION, (1, 2, 3, 4), 10, threshold=2)
    with pytest.raises(SecAggConfigError, match="n/2 < t"):
        SecAggConfig(SESSION, (1, 2, 3), 10, threshold=4)
    with pytest.raises(SecAggConfigError, match="distinct"):
        SecAggConfig(SESSION, (1, 1, 2), 10)
    with pytest.raises(SecAggConfigError, match="at least 2"):
        SecAggConfig(SESSION, (1,), 10)
    with pytest.raises(SecAggConfigError, match="session"):
        SecAggConfig(b"short", (1, 2), 10)


# --- privacy: the server cannot unmask one client ----------------------------------------------


def _b_shares(h: Harness, v: int, holders: tuple[int, ...]) -> list[shamir.Share]:
    out = []
    for u in holders:
        for w, kind, raw in wire.unpack_unmask(wire.unpack(h.sent[3][u], 1 << 20)[1]):
            if w == v:
                assert kind == ShareKind.SELF_MASK_SEED
                out.append(shamir.Share.from_bytes(raw))
    return out


def test_fewer_than_t_shares_leave_the_input_masked() -> None:
    h = Harness(n=5, seed=5)  # t = 3
    h.round0()
    h.round1()
    h.round2()
    for u in (1, 2):  # only t - 1 = 2 clients answer
        h.server.receive_unmasking(h.clients[u].unmask(h.got[3][u]))
    h.sent[3] = {u: h.clients[u].unmask(h.got[3][u]) for u in (3, 4)}  # collected, not given to the server
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
    h.sent[3].update({u: h.clients[u].unmask(h.got[3][u]) for u in (5,)})
    right = shamir.combine(_b_shares(h, 4, (3, 4, 5)))
    assert right == seed_4
    unmasked = y_4 - prg(self_mask_key(right, SESSION, 4), h.config.params)
    assert np.count_nonzero(unmasked == h.x[4]) < 3


def test_server_refuses_a_share_of_the_wrong_kind() -> None:
    h = Harness(n=5, seed=6)
    h.round0()
    h.round1()
    h.round2(drop=(5,))
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
    h.server.receive_unmasking(client.unmask(h.got[3][1]))  # the honest answer is still taken


def test_client_answers_one_unmasking_request_only() -> None:
    h = Harness(n=5, seed=7)
    h.round0()
    h.round1()
    h.round2()
    client = h.clients[3]
    other = wire.pack(Header(Kind.UNMASK_REQUEST, SERVER, 3, SESSION), wire.pack_ids([1, 3, 4]))
    client.unmask(h.got[3][3])
    with pytest.raises(WrongRound):  # the same client asked again, now told 2 and 5 dropped
        client.unmask(other)


def test_client_refuses_bad_unmasking_requests() -> None:
    h = Harness(n=5, seed=8)
    h.round0()
    h.round1()
    h.round2()

    def req(ids: list[int]) -> bytes:
        return wire.pack(Header(Kind.UNMASK_REQUEST, SERVER, 3, SESSION), wire.pack_ids(ids))

    client = h.clients[3]
    with pytest.raises(TooManyDropouts):  # t = 3: asking for s_sk of 3 clients out of 5
        client.unmask(req([1, 3]))
    h2 = Harness(n=5, seed=8)
    h2.round0()
    h2.round1()
    h2.round2()
    with pytest.raises(ProtocolViolation, match="leaves me out"):
        h2.clients[3].unmask(
            wire.pack(Header(Kind.UNMASK_REQUEST, SERVER, 3, SESSION), wire.pack_ids([1, 2, 4]))
        )
    h2.clients[3].unmask(h2.got[3][3])  # a refused request does not change the client's state


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
    assert np.array_equal(h.round3(), h.plain_sum(h.config.clients))
    with pytest.raises(WrongRound):  # a replayed masked input after the sum
        h.server.receive(h.sent[2][1])


def test_message_of_another_session_is_refused() -> None:
    h = Harness(n=3, seed=10)
    other = SecAggConfig(bytes(16), h.config.clients, h.config.params)
    with pytest.raises(WrongSession):
        h.server.receive_keys(SecAggClient(other, 1).advertise_keys())


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
        "bad version": good[:4] + b"\x02" + good[5:],
        "unknown kind": good[:5] + b"\x09" + good[6:],
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
    h.got[3] = h.server.request_unmasking()
    assert np.array_equal(h.round3(), h.plain_sum((1, 2, 3)))


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
    h.sent[3] = {u: h.clients[u].unmask(m) for u, m in h.got[3].items()}
    h.server.receive_unmasking(h.sent[3][1])
    with pytest.raises(DuplicateMessage):
        h.server.receive_unmasking(h.sent[3][1])
    for u in (2, 3):
        h.server.receive_unmasking(h.sent[3][u])
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
    h.got[3] = h.server.request_unmasking()
    assert np.array_equal(h.round3(), h.plain_sum((1, 2, 3)))


def test_tampered_sealed_shares_and_key_lists_are_refused() -> None:
    h = Harness(n=3, seed=16)
    key_lists = h.round0()
    entries = wire.unpack_key_list(wire.unpack(key_lists[1], 1 << 20)[1])
    same_keys = [(i, entries[0][1], entries[0][2]) if i == 2 else (i, c, s) for i, c, s in entries]
    forged = wire.pack(Header(Kind.KEY_LIST, SERVER, 1, SESSION), wire.pack_key_list(same_keys))
    with pytest.raises(ProtocolViolation, match="repeats a public key"):
        h.clients[1].share_keys(forged)
    not_mine = [(i, s, c) if i == 1 else (i, c, s) for i, c, s in entries]
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
        DuplicateMessage,
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
