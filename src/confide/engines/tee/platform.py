"""Files of the ``simulated`` TEE backend: the authority that vouches, and each enclave host's platform.

``confide consortium init`` makes them (runs OUTSIDE the enclave; not measured)::

    C/tee/authority/root.key        the simulated attestation root (P-256 scalar, 0600). Whoever holds
                                    it can forge quotes: in production an attestation authority the
                                    consortium trusts keeps it, never a host.
    C/tee/authority/build.key       the runtime build's signing key (Ed25519 PKCS#8 PEM, 0600):
                                    MRSIGNER is its digest.
    C/tee/runtime-build.json        the signed runtime build every host launches (SIGSTRUCT's role).
    C/<org>/tee/attestation.json    this host's attestation key + the root's certification (0600).
    C/<org>/tee/sealing.key         this host's platform sealing root (0600; the CPU's fused key).

The genesis ``tee`` policy names the root's public key and the build as a trusted runtime, so every
node verifies quotes against its own copy of the genesis, never against a host's word.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ...crypto.files import atomic_write, read_private
from ._simkeys import Certification
from .attestation import AttestationKey, SimulatedRoot
from .measurement import RuntimeBuild
from .sealing import SealingRoot, load_sealing_root

__all__ = [
    "HostPlatform",
    "load_platform",
    "make_authority",
    "provision_host",
    "runtime_build_from_json",
    "runtime_build_json",
]

RUNTIME_NAME = "confide-simulated-runtime"


def runtime_build_json(build: RuntimeBuild) -> dict[str, Any]:
    return {
        "runtime_digest": build.runtime_digest.hex(),
        "locked_deps_digest": build.locked_deps_digest.hex(),
        "isv_prod_id": build.isv_prod_id,
        "isv_svn": build.isv_svn,
        "signer_public_key": build.signer_public_key.hex(),
        "signature": build.signature.hex(),
    }


def runtime_build_from_json(obj: dict[str, Any]) -> RuntimeBuild:
    try:
        return RuntimeBuild(
            bytes.fromhex(obj["runtime_digest"]),
            bytes.fromhex(obj["locked_deps_digest"]),
            int(obj["isv_prod_id"]),
            int(obj["isv_svn"]),
            bytes.fromhex(obj["signer_public_key"]),
            bytes.fromhex(obj["signature"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"runtime build file is malformed: {exc}") from None


def make_authority(directory: Path, *, isv_prod_id: int = 1, isv_svn: int = 1) -> dict[str, Any]:
    """Create the root, the build key and the signed build under ``directory``; return the genesis policy."""
    root, build_key = SimulatedRoot.generate(), Ed25519PrivateKey.generate()
    atomic_write(directory / "authority" / "root.key", root.private_bytes())
    pem = build_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    atomic_write(directory / "authority" / "build.key", pem)
    build = RuntimeBuild.sign(build_key, isv_prod_id=isv_prod_id, isv_svn=isv_svn)
    (directory / "runtime-build.json").write_text(json.dumps(runtime_build_json(build), indent=2) + "\n")
    runtime: dict[str, Any] = {"name": RUNTIME_NAME, "runtime_digest": build.runtime_digest.hex()}
    runtime |= {"mrsigner": build.mrsigner.hex(), "isv_prod_id": isv_prod_id, "min_isv_svn": isv_svn}
    return {"attestation_roots": [root.public_key_hex], "trusted_runtimes": [runtime]}


def provision_host(authority_dir: Path, host_dir: Path) -> None:
    """Give one node an attestation key certified by the authority's root, and a sealing root."""
    root = SimulatedRoot.from_private_bytes(read_private(authority_dir / "authority" / "root.key"))
    key = AttestationKey.create(root)
    cert = key.certification
    doc = {
        "private_key": key.private_bytes().hex(),
        "qe_report": cert.qe_report.hex(),
        "signature": cert.signature.hex(),
        "root_public_key": cert.root_public_key.hex(),
        "pce_svn": key.pce_svn,
    }
    atomic_write(host_dir / "attestation.json", json.dumps(doc).encode())
    SealingRoot.generate().save(host_dir / "sealing.key")


@dataclass(frozen=True)
class HostPlatform:
    """What an enclave host node holds: its quoting key, sealing root and the runtime build it launches."""

    attestation_key: AttestationKey
    sealing_root: SealingRoot
    build: RuntimeBuild


def load_platform(host_dir: Path, runtime_build: Path) -> HostPlatform:
    """Load a host's platform files; ``ValueError``/``OSError`` say which file is wrong."""
    doc = json.loads(read_private(host_dir / "attestation.json"))
    cert = Certification(
        bytes.fromhex(doc["qe_report"]),
        bytes.fromhex(doc["signature"]),
        bytes.fromhex(doc["root_public_key"]),
    )
    key = AttestationKey(bytes.fromhex(doc["private_key"]), cert, pce_svn=int(doc["pce_svn"]))
    build = runtime_build_from_json(json.loads(runtime_build.read_text(encoding="utf-8")))
    return HostPlatform(key, load_sealing_root(host_dir / "sealing.key"), build)
