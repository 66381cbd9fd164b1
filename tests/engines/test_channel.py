"""Tests of the trusted channel into an enclave (``confide.engines.tee.channel``).

Known answers live in ``vectors/channel_kat.json`` (computed by an independent script, RFC 7748 keys).
Every attack — reordered, replayed, dropped, truncated, altered or foreign frames, a receiver keyed
with another quote digest or enclave key — must surface as the one opaque :class:`ChannelError`, with
``detail`` naming the cause, and must leave the receiver unusable. A Hypothesis property checks that
any arrangement of a transfer's frames other than the original order is refused.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from confide.crypto.canonical import canonical_bytes
from confide.engines.tee.channel import (
    MAX_FRAME,
    MIN_FRAME,
    OPAQUE,
    ChannelError,
    ChannelReceiver,
    ChannelSender,
    TransferContext,
    channel_info,
    derive_keys,
    schema_digest,
)

KAT: dict[str, Any] = json.loads((Path(__file__).parent / "vectors" / "channel_kat.json").read_text())
INVALID = KAT["invalid"]


# --- factories --------------------------------------------------------------------------------------


def _ctx(**changes: Any) -> TransferContext:
    fields: dict[str, Any] = {
        "quote_digest": hashlib.sha256(b"quote").digest(),
        "task_id": "task-1",
        "dataset_id": "tax/filings",
        "sender_key_id": "ab" * 32,
    }
    return TransferContext(**(fields | changes))


def _table(rows: int, *, seed: int = 0) -> pa.Table:
    """A deterministic table of several Arrow types, with nulls."""
    ids = list(range(seed, seed + rows))
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "code": pa.array([f"91330100MA{i:08d}X-{'税' * (i % 3)}" for i in ids]),
            "revenue": pa.array([None if i % 7 == 0 else i * 1.25 for i in ids]),
            "arrears": pa.array([i % 5 == 0 for i in ids]),
            "filed": pa.array(
                [dt.datetime(2024, 1, 1) + dt.timedelta(minutes=i) for i in ids], pa.timestamp("us")
            ),
            "monthly_kwh": pa.array([[i % 97, i % 89, i % 83] for i in ids], pa.list_(pa.int32())),
            "region": pa.array(
                ["north", "south", "east", "west"] * (rows // 4) + ["north"] * (rows % 4)
            ).dictionary_encode(),
        }
    )


def _frames(
    table: pa.Table, key: X25519PrivateKey, ctx: TransferContext, *, chunk: int = 500, **kw: Any
) -> list[bytes]:
    sender = ChannelSender(key.public_key().public_bytes_raw(), ctx, **kw)
    return list(sender.send_batches(table.to_batches(max_chunksize=chunk), schema=table.schema))


def _flip(frame: bytes, byte: int, xor: int = 1) -> bytes:
    out = bytearray(frame)
    out[byte] ^= xor
    return bytes(out)


def _feed_until_error(receiver: ChannelReceiver, frames: list[bytes]) -> ChannelError:
    with pytest.raises(ChannelError) as info:
        for frame in frames:
            receiver.feed(frame)
        receiver.finish()
    assert str(info.value) == OPAQUE
    return info.value


# A small transfer of several frames, shared by the attack tests and the Hypothesis property.
KEY = X25519PrivateKey.from_private_bytes(hashlib.sha256(b"enclave").digest())
CTX = _ctx()
SMALL = _table(1200)
FRAMES = _frames(SMALL, KEY, CTX, max_frame=16 * 1024)


# --- known answers ----------------------------------------------------------------------------------


def _kat_context() -> TransferContext:
    return TransferContext(quote_digest=bytes.fromhex(KAT["quote_digest"]), **KAT["context"])


def _kat_table() -> pa.Table:
    schema = pa.schema([(name, pa.type_for_alias(kind)) for name, kind in KAT["schema"]])
    return pa.Table.from_pylist(KAT["rows"], schema=schema)


def test_kat_key_schedule() -> None:
    # Prepare
    enclave = X25519PrivateKey.from_private_bytes(bytes.fromhex(KAT["enclave_private"]))
    sender = X25519PrivateKey.from_private_bytes(bytes.fromhex(KAT["sender_private"]))
    enclave_pub, sender_pub = (k.public_key().public_bytes_raw() for k in (enclave, sender))

    # Execute
    shared = sender.exchange(X25519PublicKey.from_public_bytes(enclave_pub))
    info = channel_info(
        _kat_context(),
        sender_pub=sender_pub,
        enclave_pub=enclave_pub,
        transfer_id=bytes.fromhex(KAT["transfer_id"]),
    )
    key, prefix = derive_keys(shared, bytes.fromhex(KAT["quote_digest"]), info)

    # Assert
    assert (enclave_pub.hex(), sender_pub.hex(), shared.hex()) == (
        KAT["enclave_public"],
        KAT["sender_public"],
        KAT["shared"],
    )
    assert info.hex() == KAT["info"] and info.decode() == KAT["info_utf8"]
    assert (key.hex(), prefix.hex()) == (KAT["key"], KAT["nonce_prefix"])
    assert schema_digest(_kat_table().schema) == KAT["schema_digest"]


def test_kat_sender_reproduces_manifest_and_final_frames() -> None:
    # Prepare
    sender = ChannelSender(
        bytes.fromhex(KAT["enclave_public"]),
        _kat_context(),
        ephemeral=X25519PrivateKey.from_private_bytes(bytes.fromhex(KAT["sender_private"])),
        transfer_id=bytes.fromhex(KAT["transfer_id"]),
    )
    table = _kat_table()

    # Execute
    frames = list(sender.send_batches(table.to_batches(), schema=table.schema))

    # Assert: manifest and trailer frames byte for byte; the data frame's plaintext is pyarrow's IPC bytes
    assert len(frames) == 3
    assert frames[0].hex() == KAT["frames"][0]
    assert frames[2].hex() == KAT["frames"][2]


def test_kat_receiver_opens_vector_frames() -> None:
    # Prepare
    enclave = X25519PrivateKey.from_private_bytes(bytes.fromhex(KAT["enclave_private"]))
    receiver = ChannelReceiver(enclave, _kat_context())

    # Execute
    fed = [receiver.feed(bytes.fromhex(f)) for f in KAT["frames"]]
    table = receiver.finish()

    # Assert
    assert [len(batches) for batches in fed] == [0, 1, 0]
    assert table.to_pylist() == KAT["rows"]
    assert canonical_bytes(receiver.manifest).decode() == KAT["manifest"]


@pytest.mark.parametrize("vector", INVALID, ids=[v["name"] for v in INVALID])
def test_kat_invalid_vectors_abort_with_detail(vector: dict[str, Any]) -> None:
    # Prepare
    enclave = X25519PrivateKey.from_private_bytes(bytes.fromhex(KAT["enclave_private"]))
    frames = [bytes.fromhex(f) for f in KAT["frames"]]
    m = vector["mutate"]
    frames[m["frame"]] = _flip(frames[m["frame"]], m["byte"], m["xor"])

    # Execute
    error = _feed_until_error(ChannelReceiver(enclave, _kat_context()), frames)

    # Assert
    assert error.detail == vector["detail"]


# --- round trips ------------------------------------------------------------------------------------


def test_roundtrip_multi_mib_table_in_bounded_frames() -> None:
    # Prepare
    table = _table(120_000, seed=7)
    assert table.nbytes > 4 * 2**20
    receiver = ChannelReceiver(KEY, CTX)

    # Execute
    frames = _frames(table, KEY, CTX, chunk=40_000)  # batches of ~2.7 MiB, sliced into frames
    per_frame = [receiver.feed(f) for f in frames]
    result = receiver.finish()

    # Assert
    assert 8 < len(frames) < 20 and max(map(len, frames)) <= MAX_FRAME
    assert sum(b.num_rows for batches in per_frame for b in batches) == table.num_rows
    assert result.schema.equals(table.schema)
    assert result.equals(table)
    assert receiver.manifest["columns"] == table.column_names


def test_roundtrip_one_huge_batch_is_sliced_to_the_frame_limit() -> None:
    # Prepare
    table = _table(20_000).combine_chunks()
    sender = ChannelSender(KEY.public_key().public_bytes_raw(), CTX, max_frame=64 * 1024)
    receiver = ChannelReceiver(KEY, CTX)

    # Execute
    frames = list(sender.send_batches(table.to_batches(), schema=table.schema))
    for frame in frames:
        receiver.feed(frame)

    # Assert
    assert len(table.to_batches()) == 1 and len(frames) > 10
    assert max(map(len, frames)) <= 64 * 1024
    assert receiver.finish().equals(table)


def test_roundtrip_empty_stream_keeps_the_schema() -> None:
    # Prepare
    schema = _table(4).schema
    sender = ChannelSender(KEY.public_key().public_bytes_raw(), CTX)
    receiver = ChannelReceiver(KEY, CTX)

    # Execute
    for frame in sender.send_batches([], schema=schema):
        receiver.feed(frame)
    result = receiver.finish()

    # Assert
    assert result.num_rows == 0 and result.schema.equals(schema)


def test_receiver_without_collect_streams_batches_only() -> None:
    # Prepare
    receiver = ChannelReceiver(KEY, CTX, collect=False)

    # Execute
    rows = sum(b.num_rows for f in FRAMES for b in receiver.feed(f))
    result = receiver.finish()

    # Assert
    assert rows == SMALL.num_rows
    assert result.num_rows == 0 and result.schema.equals(SMALL.schema)


def test_sender_refuses_misuse() -> None:
    # Prepare
    pub = KEY.public_key().public_bytes_raw()
    sender = ChannelSender(pub, CTX, max_frame=MIN_FRAME)
    wide = pa.table({"blob": pa.array([b"x" * (2 * MIN_FRAME)])})

    # Execute / Assert
    with pytest.raises(ValueError, match="single row"):
        list(sender.send_batches(wide.to_batches()))
    with pytest.raises(RuntimeError, match="exactly one transfer"):
        sender.send_batches(SMALL.to_batches())
    with pytest.raises(ValueError, match="pass schema"):
        ChannelSender(pub, CTX).send_batches([])
    with pytest.raises(ValueError, match="max_frame"):
        ChannelSender(pub, CTX, max_frame=MAX_FRAME + 1)
    with pytest.raises(ValueError, match="32 bytes"):
        _ctx(quote_digest=b"short")


# --- attacks ----------------------------------------------------------------------------------------


def _swap(frames: list[bytes], i: int, j: int) -> list[bytes]:
    out = list(frames)
    out[i], out[j] = out[j], out[i]
    return out


ATTACKS: dict[str, tuple[list[bytes], str]] = {
    "reorder two frames": (_swap(FRAMES, 2, 3), "seq-gap: expected 2, got 3"),
    "replay a frame": (FRAMES[:3] + FRAMES[2:], "seq-replay: expected 3, got 2"),
    "drop a middle frame": (FRAMES[:2] + FRAMES[3:], "seq-gap: expected 2, got 3"),
    "drop the manifest": (FRAMES[1:], "seq-gap: expected 0, got 1"),
    "drop the final frame": (FRAMES[:-1], "truncated: no final frame"),
    "frame after the final one": ([*FRAMES, FRAMES[-1]], "after-final: frame after the FINAL frame"),
    "flip a ciphertext bit": (
        [*FRAMES[:2], _flip(FRAMES[2], 100), *FRAMES[3:]],
        "auth: frame failed authentication",
    ),
    "flip a tag bit": ([*FRAMES[:2], _flip(FRAMES[2], -1), *FRAMES[3:]], "auth: frame failed authentication"),
    "flip the FINAL flag": (
        [*FRAMES[:2], _flip(FRAMES[2], 5), *FRAMES[3:]],
        "auth: frame failed authentication",
    ),
    "truncate a frame": ([*FRAMES[:2], FRAMES[2][:-1], *FRAMES[3:]], "malformed: header"),
    "low-order sender key": (
        [FRAMES[0][:34] + bytes(32) + FRAMES[0][66:], *FRAMES[1:]],
        "key: unusable sender public key",
    ),
    "oversize frame": ([FRAMES[0] + bytes(MAX_FRAME)], "malformed: frame size out of bounds"),
}


@pytest.mark.parametrize("name", list(ATTACKS))
def test_attack_is_refused_with_detail(name: str) -> None:
    # Prepare
    frames, detail = ATTACKS[name]

    # Execute
    error = _feed_until_error(ChannelReceiver(KEY, CTX), frames)

    # Assert
    assert error.detail == detail


@pytest.mark.parametrize("byte", range(34))
def test_any_flipped_header_bit_is_refused(byte: int) -> None:
    # Prepare
    frames = [*FRAMES[:2], _flip(FRAMES[2], byte), *FRAMES[3:]]

    # Execute
    error = _feed_until_error(ChannelReceiver(KEY, CTX), frames)

    # Assert: the header is either checked in the clear or authenticated as AAD
    assert error.detail.split(":")[0] in {"malformed", "transfer-id", "seq-gap", "seq-replay", "auth"}


def test_frame_from_another_transfer_is_refused() -> None:
    # Prepare: the same owner sends the same table twice to the same enclave
    other = _frames(SMALL, KEY, CTX, max_frame=16 * 1024)

    # Execute
    error = _feed_until_error(ChannelReceiver(KEY, CTX), [*FRAMES[:2], other[2], *FRAMES[3:]])

    # Assert
    assert error.detail == "transfer-id: frame of another transfer"


@pytest.mark.parametrize(
    "receiver",
    [
        pytest.param(ChannelReceiver(KEY, _ctx(quote_digest=bytes(32))), id="wrong quote digest"),
        pytest.param(ChannelReceiver(X25519PrivateKey.generate(), CTX), id="wrong enclave key"),
        pytest.param(ChannelReceiver(KEY, _ctx(task_id="task-2")), id="another task"),
        pytest.param(ChannelReceiver(KEY, _ctx(dataset_id="power/usage")), id="another dataset"),
        pytest.param(ChannelReceiver(KEY, _ctx(sender_key_id="cd" * 32)), id="another sender"),
    ],
)
def test_receiver_keyed_for_anything_else_refuses_the_first_frame(receiver: ChannelReceiver) -> None:
    # Prepare / Execute
    error = _feed_until_error(receiver, FRAMES)

    # Assert
    assert error.detail == "auth: frame failed authentication"


def _forged(manifest_changes: dict[str, Any], payloads: list[bytes], trailer: dict[str, int]) -> list[bytes]:
    """Frames from a key holder who lies inside authenticated frames (uses the sender's internals)."""
    sender = ChannelSender(KEY.public_key().public_bytes_raw(), CTX)
    manifest = CTX.bound(sender.transfer_id) | {
        "columns": SMALL.column_names,
        "schema_digest": schema_digest(SMALL.schema),
    }
    frames = [sender._frame(canonical_bytes(manifest | manifest_changes), lead=sender.public_key)]
    frames += [sender._frame(p) for p in payloads]
    return [*frames, sender._frame(canonical_bytes(trailer), flags=1)]


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


@pytest.mark.parametrize(
    ("frames", "detail"),
    [
        pytest.param(
            _forged({"dataset_id": "other"}, [], {}),
            "manifest: does not match this transfer",
            id="manifest lies",
        ),
        pytest.param(
            _forged({}, [_ipc(SMALL.drop_columns(["region"]))], {"data_frames": 1, "rows": 1200}),
            "payload: schema does not match the manifest",
            id="schema differs from manifest",
        ),
        pytest.param(
            _forged({}, [_ipc(SMALL.slice(0, 5)), _ipc(SMALL.slice(0, 5).drop_columns(["id"]))], {}),
            "payload: schema changed mid-transfer",
            id="schema changes mid-transfer",
        ),
        pytest.param(_forged({}, [b"not arrow"], {}), "payload: ArrowInvalid", id="payload is not Arrow IPC"),
        pytest.param(
            _forged({}, [_ipc(SMALL.slice(0, 5))], {"data_frames": 1, "rows": 4}),
            "trailer: counts do not match what arrived",
            id="trailer counts lie",
        ),
        pytest.param(
            _forged({}, [], {"data_frames": 0, "rows": 0}),
            "trailer: counts do not match what arrived",
            id="no data frame",
        ),
    ],
)
def test_authenticated_but_inconsistent_content_is_refused(frames: list[bytes], detail: str) -> None:
    # Prepare / Execute
    error = _feed_until_error(ChannelReceiver(KEY, CTX), frames)

    # Assert
    assert error.detail == detail


def test_receiver_stays_aborted_after_an_error() -> None:
    # Prepare
    receiver = ChannelReceiver(KEY, CTX)
    receiver.feed(FRAMES[0])
    with pytest.raises(ChannelError):
        receiver.feed(FRAMES[2])

    # Execute / Assert: even the correct next frame, and finish, are refused with the first cause
    for attempt in (lambda: receiver.feed(FRAMES[1]), receiver.finish):
        with pytest.raises(ChannelError) as info:
            attempt()
        assert info.value.detail == "seq-gap: expected 1, got 2"
        assert str(info.value) == OPAQUE


# --- property ---------------------------------------------------------------------------------------

N = len(FRAMES)
ARRANGEMENTS = st.one_of(
    st.permutations(list(range(N))),
    st.lists(st.integers(0, N - 1), max_size=2 * N),
    st.lists(st.integers(0, N - 1), min_size=N, max_size=N + 2).map(sorted),
)


@settings(max_examples=200, deadline=None)
@given(order=ARRANGEMENTS)
def test_only_the_original_order_is_accepted(order: list[int]) -> None:
    # Prepare
    receiver = ChannelReceiver(KEY, CTX)

    # Execute
    try:
        for i in order:
            receiver.feed(FRAMES[i])
        result = receiver.finish()
    except ChannelError:
        accepted = False
    else:
        accepted = True

    # Assert
    assert accepted == (order == list(range(N)))
    if accepted:
        assert result.equals(SMALL)


def test_input_digest_known_answer() -> None:
    """The input digest is BLAKE3 (the official empty-input vector) over label || (u32 len || frame)*."""
    import blake3

    from confide.engines.tee.wire import INPUT_LABEL, input_digest

    assert (
        blake3.blake3(b"").hexdigest() == "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    )
    frames = [b"abc", bytes(range(256)) * 5]
    assert INPUT_LABEL == b"confide/tee/input/v2\x00"
    assert input_digest(frames).hex() == "a42f331fe7b2d487da603274d9c842af251954f09479516654438fd84a1ea318"
    assert input_digest(frames[::-1]) != input_digest(frames)  # order is bound
    assert input_digest([b"abcx", frames[1][1:]]) != input_digest(frames)  # frame boundaries are bound
