"""Tests of identities (``confide.crypto.identity``): key files written 0600, loaded only when private.

An identity is a suite private key; its key id is the suite hash (SHA-256 for ``default``) of the raw
32-byte public key. ``save`` must never leave the PEM readable by group or others, and
``load_identity`` must refuse key files that are.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from confide.crypto.errors import InvalidKey
from confide.crypto.identity import Identity, load_identity
from confide.crypto.suite import get_suite


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- save ---------------------------------------------------------------------------------------------


def test_save_creates_pem_file_with_mode_0600(tmp_path: Path) -> None:
    # Prepare
    identity = Identity.generate()
    target = tmp_path / "org.pem"

    # Execute
    written = identity.save(target)

    # Assert
    assert written == target
    assert _mode(target) == 0o600
    assert target.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")


def test_save_creates_missing_parent_directories(tmp_path: Path) -> None:
    # Prepare
    target = tmp_path / "a" / "b" / "key.pem"

    # Execute
    Identity.generate().save(str(target))

    # Assert
    assert target.is_file()
    assert _mode(target) == 0o600


def test_save_ignores_permissive_umask(tmp_path: Path) -> None:
    # Prepare
    target = tmp_path / "key.pem"
    previous = os.umask(0)

    # Execute
    try:
        Identity.generate().save(target)
    finally:
        os.umask(previous)

    # Assert
    assert _mode(target) == 0o600


def test_save_over_world_readable_file_ends_with_mode_0600(tmp_path: Path) -> None:
    # Prepare
    target = tmp_path / "key.pem"
    target.write_bytes(b"old contents, much longer than nothing")
    target.chmod(0o644)
    identity = Identity.generate()

    # Execute
    identity.save(target)

    # Assert
    assert _mode(target) == 0o600
    assert load_identity(target).key_id == identity.key_id


def _record_replace(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, bytes]]:
    """Record (mode, content) of the file ``save`` is about to move into place."""
    seen: list[tuple[int, bytes]] = []
    real_replace = os.replace

    def spying_replace(src: str, dst: str | os.PathLike[str]) -> None:
        seen.append((_mode(Path(src)), Path(src).read_bytes()))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spying_replace)
    return seen


def test_save_of_new_file_never_holds_key_in_readable_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare
    target = tmp_path / "key.pem"
    seen = _record_replace(monkeypatch)

    # Execute
    Identity.generate().save(target)

    # Assert: the key only ever sat in a 0600 file, and no temp file is left behind
    assert [mode for mode, content in seen if b"PRIVATE KEY" in content] == [0o600]
    assert [p.name for p in tmp_path.iterdir()] == ["key.pem"]
    assert _mode(target) == 0o600


def test_save_over_world_readable_file_never_exposes_key(tmp_path: Path) -> None:
    # Prepare: an old 0644 file that someone already holds open
    target = tmp_path / "key.pem"
    target.write_bytes(b"placeholder")
    target.chmod(0o644)
    reader = target.open("rb")

    # Execute
    Identity.generate().save(target)

    # Assert: the early reader still sees the old bytes; the new file is 0600
    try:
        assert reader.read() == b"placeholder"
    finally:
        reader.close()
    assert _mode(target) == 0o600
    assert b"PRIVATE KEY" in target.read_bytes()


# --- load_identity -----------------------------------------------------------------------------------


def test_load_identity_round_trips_key(tmp_path: Path) -> None:
    # Prepare
    identity = Identity.generate()
    target = identity.save(tmp_path / "key.pem")

    # Execute
    loaded = load_identity(target)

    # Assert
    assert loaded.key_id == identity.key_id
    assert loaded.public_hex == identity.public_hex
    assert loaded.suite is get_suite("default")
    assert identity.public_key.verify(loaded.sign(b"message"), b"message") is None


def test_load_identity_accepts_str_path(tmp_path: Path) -> None:
    # Prepare
    identity = Identity.generate()
    target = identity.save(tmp_path / "key.pem")

    # Execute
    loaded = load_identity(str(target), suite=get_suite("default"))

    # Assert
    assert loaded.key_id == identity.key_id


@pytest.mark.parametrize("mode", [0o400, 0o600, 0o700])
def test_load_identity_accepts_owner_only_modes(tmp_path: Path, mode: int) -> None:
    # Prepare
    identity = Identity.generate()
    target = identity.save(tmp_path / "key.pem")
    target.chmod(mode)

    # Execute
    loaded = load_identity(target)

    # Assert
    assert loaded.key_id == identity.key_id


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o666, 0o610, 0o601])
def test_load_identity_refuses_group_or_world_accessible_file(tmp_path: Path, mode: int) -> None:
    # Prepare
    target = Identity.generate().save(tmp_path / "key.pem")
    target.chmod(mode)

    # Execute
    with pytest.raises(InvalidKey) as exc_info:
        load_identity(target)

    # Assert
    message = str(exc_info.value)
    assert f"chmod 600 {target}" in message
    assert f"permissions {mode:o}" in message


def test_load_identity_refuses_missing_file(tmp_path: Path) -> None:
    # Prepare
    target = tmp_path / "absent.pem"

    # Execute
    with pytest.raises(InvalidKey) as exc_info:
        load_identity(target)

    # Assert
    assert type(exc_info.value) is InvalidKey
    assert f"key file {target} does not exist" in str(exc_info.value)


def test_load_identity_refuses_file_that_is_not_a_key(tmp_path: Path) -> None:
    # Prepare
    target = tmp_path / "key.pem"
    target.write_bytes(b"not a PEM key")
    target.chmod(0o600)

    # Execute
    with pytest.raises(InvalidKey) as exc_info:
        load_identity(target)

    # Assert
    assert "cannot parse private key PEM" in str(exc_info.value)


def test_load_identity_of_gm_key_as_gm_suite(tmp_path: Path) -> None:
    # Prepare
    pytest.importorskip("tongsuopy")
    identity = Identity.generate("gm")
    target = identity.save(tmp_path / "gm.pem")

    # Execute
    loaded = load_identity(target, suite="gm")

    # Assert
    assert loaded.key_id == identity.key_id
    assert loaded.suite is get_suite("gm")


def test_load_identity_of_gm_key_as_default_suite_raises_invalid_key(tmp_path: Path) -> None:
    # Prepare
    pytest.importorskip("tongsuopy")
    target = Identity.generate("gm").save(tmp_path / "gm.pem")

    # Execute
    with pytest.raises(InvalidKey) as exc_info:
        load_identity(target, suite="default")

    # Assert
    assert type(exc_info.value) is InvalidKey


# --- key id -------------------------------------------------------------------------------------------


def test_key_id_is_sha256_hex_of_raw_public_key() -> None:
    # Prepare
    identity = Identity.generate()
    raw = identity.public_key.raw()

    # Execute
    key_id = identity.key_id

    # Assert
    assert len(raw) == 32
    assert key_id == hashlib.sha256(raw).hexdigest()
    assert identity.public_hex == raw.hex()


def test_generate_accepts_suite_instance_and_signs_verifiably() -> None:
    # Prepare
    suite = get_suite("default")

    # Execute
    identity = Identity.generate(suite)
    signature = identity.sign(b"payload")

    # Assert
    assert identity.suite is suite
    assert suite.load_public(identity.public_key.raw()).verify(signature, b"payload") is None
