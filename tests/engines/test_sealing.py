"""Tests of sealing (``confide.engines.tee.sealing``).

Known answers live in ``vectors/sealing_kat.json`` (computed by an independent script). Sealed data
opens for the same platform and identity at the same or a higher SVN; under MRSIGNER policy it also
opens across measurements of the same signer. Another measurement (MRENCLAVE policy), another signer,
a lower SVN, another platform root, other AAD or any altered byte is refused with the one opaque
:class:`SealError`, whose ``detail`` names the cause.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from confide.engines.tee.sealing import (
    OPAQUE,
    SealError,
    SealingRoot,
    load_sealing_root,
    seal,
    seal_key,
    unseal,
)

KAT: dict[str, Any] = json.loads((Path(__file__).parent / "vectors" / "sealing_kat.json").read_text())
VECTORS = KAT["vectors"]

ROOT = SealingRoot(hashlib.sha256(b"platform A").digest())
MRENCLAVE = hashlib.sha256(b"runtime v1 + task SQL").digest()
MRENCLAVE_2 = hashlib.sha256(b"runtime v1 + changed task SQL").digest()
MRSIGNER = hashlib.sha256(b"build signing key").digest()
MRSIGNER_2 = hashlib.sha256(b"another build signing key").digest()
DATA = b"result rows, sealed until every owner approves"


def _enclave(**changes: Any) -> dict[str, Any]:
    """Keyword arguments describing the enclave that seals or unseals."""
    return {"mrenclave": MRENCLAVE, "mrsigner": MRSIGNER, "isv_svn": 3} | changes


def _sealed(policy: Any = "mrenclave", **changes: Any) -> bytes:
    return seal(ROOT, policy, data=DATA, aad=b"task-1", **_enclave(**changes))


def _refusal(
    blob: bytes, policy: Any = "mrenclave", root: SealingRoot = ROOT, aad: bytes = b"task-1", **changes: Any
) -> str:
    with pytest.raises(SealError) as info:
        unseal(root, policy, blob=blob, aad=aad, **_enclave(**changes))
    assert str(info.value) == OPAQUE
    return info.value.detail


def _flip(blob: bytes, byte: int, xor: int = 1) -> bytes:
    out = bytearray(blob)
    out[byte] ^= xor
    return bytes(out)


# --- known answers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("vector", VECTORS, ids=[v["policy"] for v in VECTORS])
def test_kat_seal_produces_exact_blob(vector: dict[str, Any]) -> None:
    # Prepare
    root = SealingRoot(bytes.fromhex(KAT["root"]))
    ids = {"mrenclave": bytes.fromhex(KAT["mrenclave"]), "mrsigner": bytes.fromhex(KAT["mrsigner"])}
    data, aad = bytes.fromhex(vector["data"]), bytes.fromhex(vector["aad"])

    # Execute
    key, key_id = seal_key(
        root, 1 if vector["policy"] == "mrenclave" else 2, ids[vector["policy"]], vector["isv_svn"]
    )
    blob = seal(
        root,
        vector["policy"],
        **ids,
        isv_svn=vector["isv_svn"],
        data=data,
        aad=aad,
        nonce=bytes.fromhex(vector["nonce"]),
    )
    opened = unseal(root, vector["policy"], **ids, isv_svn=vector["isv_svn"], blob=blob, aad=aad)

    # Assert
    assert (key.hex(), key_id.hex()) == (vector["key"], vector["key_id"])
    assert blob.hex() == vector["blob"]
    assert opened == data


# --- what opens -------------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["mrenclave", "mrsigner"])
def test_same_identity_opens(policy: Any) -> None:
    # Prepare
    blob = _sealed(policy)

    # Execute
    opened = unseal(ROOT, policy, blob=blob, aad=b"task-1", **_enclave())

    # Assert
    assert opened == DATA
    assert _sealed(policy) != blob  # a fresh nonce per seal


@pytest.mark.parametrize("policy", ["mrenclave", "mrsigner"])
def test_higher_svn_opens_data_sealed_at_a_lower_one(policy: Any) -> None:
    # Prepare
    blob = _sealed(policy, isv_svn=3)

    # Execute
    opened = unseal(ROOT, policy, blob=blob, aad=b"task-1", **_enclave(isv_svn=4))

    # Assert
    assert opened == DATA


def test_mrsigner_policy_opens_across_measurements_of_the_same_signer() -> None:
    # Prepare
    blob = _sealed("mrsigner")

    # Execute
    opened = unseal(ROOT, "mrsigner", blob=blob, aad=b"task-1", **_enclave(mrenclave=MRENCLAVE_2))

    # Assert
    assert opened == DATA


# --- what is refused --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "unseal_as", "detail"),
    [
        ("mrenclave", {"mrenclave": MRENCLAVE_2}, "key-id: another identity or platform"),
        ("mrsigner", {"mrsigner": MRSIGNER_2}, "key-id: another identity or platform"),
        ("mrenclave", {"isv_svn": 2}, "svn: sealed at SVN 3, enclave runs at 2"),
        ("mrsigner", {"isv_svn": 2}, "svn: sealed at SVN 3, enclave runs at 2"),
        ("mrenclave", {"policy": "mrsigner"}, "policy: sealed under policy 1, asked for 2"),
        ("mrenclave", {"aad": b"task-2"}, "auth: blob or aad altered"),
        (
            "mrenclave",
            {"root": SealingRoot(hashlib.sha256(b"platform B").digest())},
            "key-id: another identity or platform",
        ),
    ],
    ids=[
        "another measurement",
        "another signer",
        "lower svn (mrenclave)",
        "lower svn (mrsigner)",
        "other policy",
        "other aad",
        "another platform",
    ],
)
def test_refused_with_detail(policy: Any, unseal_as: dict[str, Any], detail: str) -> None:
    # Prepare
    blob = _sealed(policy)
    args = {"policy": policy} | unseal_as

    # Execute / Assert
    assert _refusal(blob, **args) == detail


@pytest.mark.parametrize(
    ("byte", "xor", "detail"),
    [
        (0, 1, "malformed: not a sealed blob of this version"),
        (4, 1, "malformed: not a sealed blob of this version"),
        (5, 3, "policy: sealed under policy 2, asked for 1"),
        (7, 1, "key-id: another identity or platform"),  # SVN 3 -> 2: another key
        (7, 4, "svn: sealed at SVN 7, enclave runs at 3"),  # SVN 3 -> 7
        (8, 1, "key-id: another identity or platform"),
        (24, 1, "auth: blob or aad altered"),  # nonce
        (40, 1, "auth: blob or aad altered"),  # ciphertext
        (-1, 128, "auth: blob or aad altered"),  # tag
    ],
    ids=["magic", "version", "policy", "svn lowered", "svn raised", "key id", "nonce", "ciphertext", "tag"],
)
def test_altered_field_is_refused_with_detail(byte: int, xor: int, detail: str) -> None:
    # Prepare
    blob = _flip(_sealed(), byte, xor)

    # Execute / Assert
    assert _refusal(blob) == detail


def test_every_single_bit_flip_and_truncation_is_refused() -> None:
    # Prepare
    blob = _sealed()
    altered = [_flip(blob, i, 1 << bit) for i in range(len(blob)) for bit in range(8)]
    altered += [blob[:n] for n in range(len(blob))]

    # Execute
    details = {_refusal(b) for b in altered}

    # Assert
    assert {d.split(":")[0] for d in details} <= {"malformed", "policy", "svn", "key-id", "auth"}


def test_bad_caller_arguments_raise_value_error() -> None:
    # Prepare / Execute / Assert: caller mistakes are not trust-boundary failures
    with pytest.raises(ValueError, match="policy"):
        _sealed("mrwhatever")
    with pytest.raises(ValueError, match="32 bytes"):
        _sealed(mrenclave=b"short")
    with pytest.raises(ValueError, match="16 bits"):
        _sealed(isv_svn=70_000)
    with pytest.raises(ValueError, match="32 bytes"):
        SealingRoot(b"short")


# --- the root on disk -------------------------------------------------------------------------------


def test_root_is_saved_0600_and_loads(tmp_path: Path) -> None:
    # Prepare
    root = SealingRoot.generate()

    # Execute
    path = root.save(tmp_path / "platform" / "sealing.root")
    loaded = load_sealing_root(path)

    # Assert
    assert path.stat().st_mode & 0o777 == 0o600
    assert loaded == root
    assert root.secret.hex() not in repr(root)


def test_root_readable_by_others_is_refused(tmp_path: Path) -> None:
    # Prepare
    path = SealingRoot.generate().save(tmp_path / "sealing.root")
    os.chmod(path, 0o644)

    # Execute / Assert
    with pytest.raises(PermissionError, match="chmod 600"):
        load_sealing_root(path)
