"""A stand-in for ``pysha3`` (the ``sha3`` module) in ChainMaker's own venv (``.chainmaker-venv``).

ChainMaker's Python SDK (``chainmaker==3.0.7``) imports ``sha3`` for Keccak-256 (EVM method ids and
contract/account addresses: ``utils/evm_utils.py``, ``utils/address_utils.py``) and SHA3-256. The
``pysha3`` package it names does not build on Python 3.11 (it uses CPython internals removed in 3.11),
so ``make chainmaker-env`` installs the SDK with ``--no-deps`` and copies this file into the venv's
site-packages as ``sha3.py``. It offers only what the SDK calls, with pysha3's names and hashlib's
object interface:

* ``keccak_256``: the original Keccak-256 (Ethereum's, padding 0x01), from pycryptodome's
  ``Crypto.Hash.keccak``; it is NOT ``hashlib.sha3_256`` (FIPS-202 SHA3, padding 0x06).
* ``sha3_256``: FIPS-202 SHA3-256, which is ``hashlib.sha3_256`` (pysha3 offered both).

Known answers (tests/ledger/test_chainmaker_log.py checks them in the venv): keccak_256(b"").hexdigest()
== "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470", sha3_256(b"").hexdigest() ==
"a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a".
"""

from __future__ import annotations

import hashlib

from Crypto.Hash import keccak as _keccak

__all__ = ["keccak_256", "sha3_256"]

sha3_256 = hashlib.sha3_256


class keccak_256:
    """Keccak-256 with hashlib's interface: update, digest, hexdigest (a digest may be taken more
    than once and followed by more updates, as with pysha3; the SDK needs nothing else)."""

    name = "keccak_256"
    digest_size = 32
    block_size = 136

    def __init__(self, data: bytes = b"") -> None:
        self._h = _keccak.new(digest_bits=256, update_after_digest=True)
        if data:
            self._h.update(data)

    def update(self, data: bytes) -> None:
        self._h.update(data)

    def digest(self) -> bytes:
        return self._h.digest()

    def hexdigest(self) -> str:
        return self._h.hexdigest()
