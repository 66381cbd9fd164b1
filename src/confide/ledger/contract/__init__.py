"""The platform contract (deterministic state machine) and its state views."""

from .contract import TX_TYPES, Contract
from .ctx import BlockInfo
from .queries import QueryError
from .state import MemoryState, Overlay, StateView

__all__ = ["TX_TYPES", "BlockInfo", "Contract", "MemoryState", "Overlay", "QueryError", "StateView"]
