"""Identities: a signing key plus its key id, stored as PKCS#8 PEM with 0600 permissions.

An org's (or a member's) identity on the ledger *is* its key: the ledger knows
the public key and refers to it by key id (the suite hash of the raw public key).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import InvalidKey
from .files import atomic_write
from .suite import PrivateKey, PublicKey, Suite, get_suite

__all__ = ["Identity", "load_identity"]


@dataclass(frozen=True, slots=True)
class Identity:
    """A private key of some suite, with its public key and key id."""

    key: PrivateKey

    @classmethod
    def generate(cls, suite: str | Suite = "default") -> Identity:
        s = get_suite(suite) if isinstance(suite, str) else suite
        return cls(s.generate())

    @property
    def suite(self) -> Suite:
        return self.key.suite

    @property
    def public_key(self) -> PublicKey:
        return self.key.public_key()

    @property
    def key_id(self) -> str:
        return self.public_key.key_id()

    @property
    def public_hex(self) -> str:
        return self.public_key.raw().hex()

    def sign(self, message: bytes) -> bytes:
        return self.key.sign(message)

    def save(self, path: str | Path) -> Path:
        """Write the key as PEM with mode 0600 (never world-readable, even for a moment).

        The key goes to a fresh 0600 temp file in the same folder, which then
        atomically replaces ``path``: an existing file's looser mode or open
        readers never see the new key.
        """
        return atomic_write(path, self.key.to_pem())


def load_identity(path: str | Path, suite: str | Suite = "default") -> Identity:
    """Load a PEM key; refuse files readable by group or others."""
    p = Path(path)
    if not p.exists():
        raise InvalidKey(f"key file {p} does not exist")
    mode = p.stat().st_mode & 0o777
    if mode & 0o077:
        raise InvalidKey(f"key file {p} has permissions {mode:o}; run: chmod 600 {p}")
    s = get_suite(suite) if isinstance(suite, str) else suite
    return Identity(s.load_private_pem(p.read_bytes()))
