"""The PSI engines a ``psi`` task can name, by the code (and its SHA-256, ``code_digest``) on the ledger.

``ecdh`` is the built-in ECDH-PSI (:mod:`.ecdh`); ``spu-rr22``, ``spu-kkrt`` and ``spu-ecdh`` are
SecretFlow SPU's protocols run out of process (:mod:`.spu`). Both nodes of a run read the engine
from the task on their own ledger view, so neither can be talked into another one.
"""

from __future__ import annotations

import hashlib

from .interface import ECDH_PSI_CODE
from .spu import SPU_PROTOCOLS, spu_code

__all__ = ["PSI_ENGINES", "code_digest", "engine_of"]

PSI_ENGINES: dict[str, str] = {"ecdh": ECDH_PSI_CODE} | {name: spu_code(name) for name in SPU_PROTOCOLS}
_BY_DIGEST = {hashlib.sha256(code.encode()).hexdigest(): name for name, code in PSI_ENGINES.items()}


def code_digest(engine: str) -> str:
    """The ``code_digest`` a psi task names for ``engine``; ValueError for an unknown engine."""
    if engine not in PSI_ENGINES:
        raise ValueError(f"unknown PSI engine {engine!r}; one of {', '.join(PSI_ENGINES)}")
    return hashlib.sha256(PSI_ENGINES[engine].encode()).hexdigest()


def engine_of(digest: str) -> str | None:
    """The engine a task's ``code_digest`` names, or None."""
    return _BY_DIGEST.get(digest)
