"""The embedded chain: SQLite block store, solo orderer, verifying replicas."""

from .backend import EmbeddedBackend
from .orderer import SoloOrderer, wall_clock_ms
from .replica import Replica
from .store import ChainDB, DBState
from .verify import VerifyReport, verify_chain

__all__ = [
    "ChainDB",
    "DBState",
    "EmbeddedBackend",
    "Replica",
    "SoloOrderer",
    "VerifyReport",
    "verify_chain",
    "wall_clock_ms",
]
