"""Crypto suites: the plug-in seam between Confide and its primitives.

A suite bundles one signature scheme and one hash function. A consortium picks
one suite in its genesis (``default``: Ed25519 + SHA-256; ``gm``: SM2 + SM3),
and every caller goes through this interface, so adding a suite touches no
caller. Suites are looked up by name in a registry; an unknown name is a typed
error listing the valid ones.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable

from .errors import UnknownSuite

__all__ = ["PrivateKey", "PublicKey", "Suite", "available_suites", "get_suite", "register_suite"]


class PublicKey(ABC):
    """A verifying key of some suite."""

    suite: Suite

    @abstractmethod
    def raw(self) -> bytes:
        """Stable byte encoding of the key (what key ids are computed over)."""

    @abstractmethod
    def verify(self, signature: bytes, message: bytes) -> None:
        """Return None if valid; raise :class:`InvalidSignature` otherwise."""

    def key_id(self) -> str:
        """Key id: hex digest (suite hash) of the raw public key."""
        return self.suite.hash(self.raw()).hex()


class PrivateKey(ABC):
    """A signing key of some suite."""

    suite: Suite

    @abstractmethod
    def sign(self, message: bytes) -> bytes:
        """Sign ``message`` and return the signature bytes."""

    @abstractmethod
    def public_key(self) -> PublicKey:
        """The matching public key."""

    @abstractmethod
    def to_pem(self) -> bytes:
        """Unencrypted PKCS#8 PEM (callers write it with 0600 permissions)."""


class Suite(ABC):
    """One signature scheme plus one hash function."""

    name: str
    hash_name: str
    signature_name: str

    @abstractmethod
    def hash(self, data: bytes) -> bytes:
        """Digest ``data`` with the suite's hash (32 bytes for both suites)."""

    @abstractmethod
    def generate(self) -> PrivateKey:
        """Create a fresh signing key from the OS CSPRNG."""

    @abstractmethod
    def load_private_pem(self, pem: bytes) -> PrivateKey:
        """Parse a PKCS#8 PEM key; raise :class:`InvalidKey` if it is not ours."""

    @abstractmethod
    def load_public(self, raw: bytes) -> PublicKey:
        """Parse the raw encoding produced by :meth:`PublicKey.raw`."""


_FACTORIES: dict[str, Callable[[], Suite]] = {}
_CACHE: dict[str, Suite] = {}


def register_suite(name: str, factory: Callable[[], Suite]) -> None:
    """Register a suite factory; it is called lazily on first use."""
    _FACTORIES[name] = factory


def available_suites() -> list[str]:
    return sorted(_FACTORIES)


def get_suite(name: str) -> Suite:
    """Return the suite called ``name`` (raises :class:`UnknownSuite`)."""
    suite = _CACHE.get(name)
    if suite is None:
        factory = _FACTORIES.get(name)
        if factory is None:
            raise UnknownSuite(name, available_suites())
        suite = _CACHE[name] = factory()
    return suite


def _lazy(module: str, attr: str) -> Callable[[], Suite]:
    def factory() -> Suite:
        cls = getattr(importlib.import_module(module, __package__), attr)
        suite: Suite = cls()
        return suite

    return factory


register_suite("default", _lazy("._default", "DefaultSuite"))
register_suite("gm", _lazy("._gm", "GmSuite"))
