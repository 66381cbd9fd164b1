"""Errors of the FL engine. Messages name the step, the round and the client, never a secret or a share."""

from __future__ import annotations


class FlError(Exception):
    """Base class of every FL engine error."""


class FixedPointError(FlError):
    """A value cannot be encoded (NaN or infinity) or an encoding cannot hold the requested sum."""


class ShamirError(FlError):
    """Bad parameters for Shamir sharing, or shares that cannot be combined."""


class NotEnoughShares(ShamirError):
    """Fewer shares than the threshold: the secret is information-theoretically hidden."""


class InconsistentShares(ShamirError):
    """The shares do not lie on one polynomial of degree < threshold (a share is wrong or forged)."""


class SecAggError(FlError):
    """Base class of the secure-aggregation protocol's errors."""


class SecAggConfigError(SecAggError):
    """Bad session parameters (client set, threshold, vector length)."""


class MalformedMessage(SecAggError):
    """Bytes that do not parse: bad magic/version/kind, truncated, trailing bytes, oversized, wrong
    vector length, bad key or share encoding."""


class WrongSession(SecAggError):
    """A message of another session (replayed from an earlier run, or misrouted)."""


class WrongRound(SecAggError):
    """A message of a round other than the one in progress (replayed from an earlier round, late, or
    early), or a second request for a round already answered."""


class UnknownSender(SecAggError):
    """The sender is not a client of this session (or not one that takes part in this round)."""


class Misaddressed(SecAggError):
    """The message names another receiver."""


class DuplicateMessage(SecAggError):
    """A second message from the same client in the same round."""


class ProtocolViolation(SecAggError):
    """A well-formed message whose content breaks the protocol: inconsistent client sets, repeated
    public keys, a share ciphertext that does not decrypt, a share of the wrong kind (a request that
    would reveal both secrets of one client), a reconstructed key that does not match its public key."""


class BadSignature(SecAggError):
    """A signature that is missing or does not verify under the signer's identity key (the session
    config's ``identity_keys``): an advertised key pair the client did not sign (a key substituted by
    the server, a replay from another session), or a forged signature over the survivor set."""


class InconsistentSurvivors(SecAggError):
    """The consistency check failed: the unmasking request names a survivor set other than the one
    this client signed, or does not carry ``t`` signatures of survivors over it — the server showed
    different survivor sets to different clients, or has too few confirmations."""


class TooManyDropouts(SecAggError):
    """Fewer than ``threshold`` clients are left: the round is aborted and no sum is produced."""


class SessionAborted(SecAggError):
    """The session already failed; no further message is processed."""
