"""Crypto layer: suites (default Ed25519+SHA-256, gm SM2+SM3), identities,
canonical encoding and Merkle trees. Everything above this layer goes through
these names; primitives stay inside the suites."""

from .canonical import canonical_bytes, parse_canonical
from .errors import (
    CanonicalEncodingError,
    ConfideCryptoError,
    InvalidKey,
    InvalidSignature,
    SuiteUnavailable,
    UnknownSuite,
)
from .identity import Identity, load_identity
from .merkle import inclusion_proof, leaf_hash, merkle_root, verify_inclusion
from .suite import PrivateKey, PublicKey, Suite, available_suites, get_suite

__all__ = [
    "CanonicalEncodingError",
    "ConfideCryptoError",
    "Identity",
    "InvalidKey",
    "InvalidSignature",
    "PrivateKey",
    "PublicKey",
    "Suite",
    "SuiteUnavailable",
    "UnknownSuite",
    "available_suites",
    "canonical_bytes",
    "get_suite",
    "inclusion_proof",
    "leaf_hash",
    "load_identity",
    "merkle_root",
    "parse_canonical",
    "verify_inclusion",
]
