"""MPC between org nodes: joint statistics and SS-LR (``engines.mpc``) over the nodes' authenticated links."""

from .sessions import (
    DEALER,
    MAX_MESSAGE,
    MAX_RUN_AGE_MS,
    MPC_CODE,
    MPC_CODE_DIGEST,
    MPC_LR_CODE,
    MPC_LR_CODE_DIGEST,
    REQUESTER,
    MpcRefused,
    MpcSessions,
    commitment,
    session_bytes,
)

__all__ = [
    "DEALER",
    "MAX_MESSAGE",
    "MAX_RUN_AGE_MS",
    "MPC_CODE",
    "MPC_CODE_DIGEST",
    "MPC_LR_CODE",
    "MPC_LR_CODE_DIGEST",
    "REQUESTER",
    "MpcRefused",
    "MpcSessions",
    "commitment",
    "session_bytes",
]
