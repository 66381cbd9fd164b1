"""What the ``simulated`` backend measures: the enclave runtime's files, its locked dependencies, its build.

The enclave host computes these before it launches an enclave, and owners recompute them with
:func:`measure` to set the MRENCLAVE they expect (in production: the one the ledger policy names).

* runtime digest = SHA-256(b"confide/tee/runtime/v1\\0" || for each of :data:`RUNTIME_FILES`, in
  order: u64 length || path under the ``confide`` package || u64 length || source bytes). The list
  is every ``confide`` module the enclave process executes for its own work, sorted;
* locked dependencies = the text of ``constraints.txt`` at the root of the source tree (every pinned
  package, test tools included). Installed without it, the ``name==version`` lines of blake3,
  cryptography, duckdb, numpy and pyarrow from ``importlib.metadata``, which gives another MRENCLAVE:
  owners must measure the way the host does;
* MRENCLAVE = ``attestation.mrenclave(runtime digest, locked dependencies, task code)``, the task
  code being the SQL text or the registered function's source (``functions.task_code``);
* MRSIGNER = ``attestation.mrsigner`` of the Ed25519 key that signed the :class:`RuntimeBuild`
  (SIGSTRUCT's role); the host refuses a build whose signature does not cover the runtime on disk,
  as EINIT would.

Not measured: the Python interpreter and standard library, the bytes of the binary wheels (only
their versions), and the ledger and SDK modules that ``confide/__init__.py`` loads into the enclave
process as a side effect of ``python -m``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from confide.crypto.canonical import canonical_bytes

from .attestation import mrenclave, mrsigner

__all__ = ["PACKAGE_DIR", "RUNTIME_FILES", "RuntimeBuild", "locked_deps", "measure", "runtime_digest"]

RUNTIME_FILES = (
    "__init__.py",
    "crypto/__init__.py",
    "crypto/canonical.py",
    "crypto/errors.py",
    "crypto/files.py",
    "crypto/identity.py",
    "crypto/merkle.py",
    "crypto/suite.py",
    "engines/__init__.py",
    "engines/tee/__init__.py",
    "engines/tee/_simkeys.py",
    "engines/tee/attestation.py",
    "engines/tee/channel.py",
    "engines/tee/enclave.py",
    "engines/tee/functions.py",
    "engines/tee/quote.py",
    "engines/tee/sealing.py",
    "engines/tee/wire.py",
)
PACKAGE_DIR = Path(__file__).resolve().parents[2]
_RUNTIME_TAG, _BUILD_LABEL = b"confide/tee/runtime/v1\x00", b"confide/tee/runtime-build/v1\x00"
_FALLBACK_DEPS = ("blake3", "cryptography", "duckdb", "numpy", "pyarrow")


def runtime_digest() -> bytes:
    """SHA-256 over the enclave runtime's source files, as they are on disk now."""
    h = hashlib.sha256(_RUNTIME_TAG)
    for rel in RUNTIME_FILES:
        for part in (rel.encode(), (PACKAGE_DIR / rel).read_bytes()):
            h.update(len(part).to_bytes(8, "big") + part)
    return h.digest()


def locked_deps() -> str:
    """``constraints.txt`` of the source tree, or the pinned versions the enclave imports."""
    path = PACKAGE_DIR.parents[1] / "constraints.txt"
    if path.is_file():
        return path.read_text(encoding="utf-8")
    return "".join(f"{name}=={metadata.version(name)}\n" for name in _FALLBACK_DEPS)


def measure(task_code: str) -> bytes:
    """The MRENCLAVE an enclave running ``task_code`` on this runtime has."""
    return mrenclave(runtime_digest(), locked_deps(), task_code)


@dataclass(frozen=True, slots=True)
class RuntimeBuild:
    """A signed runtime build (SIGSTRUCT's role): the signer vouches for this runtime at this SVN."""

    runtime_digest: bytes
    locked_deps_digest: bytes
    isv_prod_id: int
    isv_svn: int
    signer_public_key: bytes
    signature: bytes

    @classmethod
    def sign(cls, key: Ed25519PrivateKey, *, isv_prod_id: int = 1, isv_svn: int = 1) -> RuntimeBuild:
        """Sign the runtime and dependencies as they are now (the build step, not the host's)."""
        runtime, deps = runtime_digest(), hashlib.sha256(locked_deps().encode()).digest()
        sig = key.sign(_build_statement(runtime, deps, isv_prod_id, isv_svn))
        return cls(runtime, deps, isv_prod_id, isv_svn, key.public_key().public_bytes_raw(), sig)

    @property
    def mrsigner(self) -> bytes:
        return mrsigner(self.signer_public_key)

    def check(self) -> None:
        """Raise ``ValueError`` unless the signature verifies and covers the runtime on disk."""
        statement = _build_statement(
            self.runtime_digest, self.locked_deps_digest, self.isv_prod_id, self.isv_svn
        )
        try:
            Ed25519PublicKey.from_public_bytes(self.signer_public_key).verify(self.signature, statement)
        except (InvalidSignature, ValueError):
            raise ValueError("the runtime build's signature does not verify") from None
        deps = hashlib.sha256(locked_deps().encode()).digest()
        if (self.runtime_digest, self.locked_deps_digest) != (runtime_digest(), deps):
            raise ValueError("the runtime on disk is not the signed build")


def _build_statement(runtime: bytes, deps: bytes, prod: int, svn: int) -> bytes:
    body = {"isv_prod_id": prod, "isv_svn": svn, "locked_deps": deps.hex(), "runtime": runtime.hex()}
    return _BUILD_LABEL + canonical_bytes(body)
