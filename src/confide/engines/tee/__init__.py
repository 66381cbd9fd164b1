"""TEE engine: remote attestation, trusted channel and sealing (``simulated`` backend first).

Sharp parts (byte layouts, key schedules) live in ``quote``, ``_simkeys``,
``channel`` and ``sealing``; this is the surface the node will use. The
enclave runtime, DuckDB computation and release flow come next (issue 4).
Every record this backend produces says ``tee_type: simulated``; see
``attestation`` for what simulation does not protect against.
"""

from .attestation import (
    TEE_TYPE,
    AttestationKey,
    QuoteRejected,
    SimulatedRoot,
    VerifiedQuote,
    make_quote,
    mrenclave,
    mrsigner,
    report_data,
    verify_quote,
)
from .channel import ChannelError, ChannelReceiver, ChannelSender, TransferContext
from .sealing import SealError, SealingRoot, load_sealing_root, seal, unseal

__all__ = [
    "TEE_TYPE",
    "AttestationKey",
    "ChannelError",
    "ChannelReceiver",
    "ChannelSender",
    "QuoteRejected",
    "SealError",
    "SealingRoot",
    "SimulatedRoot",
    "TransferContext",
    "VerifiedQuote",
    "load_sealing_root",
    "make_quote",
    "mrenclave",
    "mrsigner",
    "report_data",
    "seal",
    "unseal",
    "verify_quote",
]
