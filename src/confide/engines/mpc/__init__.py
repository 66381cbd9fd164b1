"""MPC engine: additive secret sharing in fixed point over Z_2^64, Beaver triples from a dealer.

Transport-agnostic: each party (and the dealer) runs a protocol generator that yields byte
messages (``program.PartyRunner``); ``transport.run_local`` wires them in-process. Modules:
``fixedpoint`` (encoding, truncation), ``shares`` (sharing, PRG seeds), ``wire`` (message
format), ``beaver`` (dealer and trust model), ``party`` (building blocks, reveal), ``stats``
(joint statistics, group-by), ``logreg`` (SS-LR), ``bench`` (``bench_mpc``).
"""

from .errors import MpcAbortedError, MpcError, MpcProtocolError, MpcTimeoutError
from .party import PartyContext, reveal, reveal_message
from .program import PartyRunner, Round

__all__ = [
    "MpcAbortedError",
    "MpcError",
    "MpcProtocolError",
    "MpcTimeoutError",
    "PartyContext",
    "PartyRunner",
    "Round",
    "reveal",
    "reveal_message",
]
