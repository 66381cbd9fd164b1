"""FL engine: horizontal federated averaging with secure aggregation (Bonawitz et al. 2017).

Engine core only (the node carries the messages later). Modules: ``fixedpoint`` (clipped fixed-point
encoding into Z_2^64, exact sums), ``shamir`` (t-of-n sharing of 32-byte secrets over
GF(2^256 + 297)), ``masks`` (HKDF + AES-128-CTR mask expansion, vectorized), ``wire`` (message
format), ``secagg`` (``SecAggClient``/``SecAggServer``, five rounds, dropout-tolerant; advertised keys
and the survivor set signed with the clients' identities), ``bench`` (``run_bench``: a secure round
against the same round without masks), ``models`` (numpy logistic regression and a one-hidden-layer
MLP, SGD with an optional FedProx term) and ``strategy`` (``FedAvg`` / ``FedProx`` and
``federated_round``: weighted updates encoded in fixed point and summed in the ring, as SecAgg sums
them).
"""

from .errors import (
    BadSignature,
    DuplicateMessage,
    FixedPointError,
    FlError,
    InconsistentShares,
    InconsistentSurvivors,
    MalformedMessage,
    Misaddressed,
    NotEnoughShares,
    ProtocolViolation,
    SecAggConfigError,
    SecAggError,
    SessionAborted,
    ShamirError,
    TooManyDropouts,
    UnknownSender,
    WrongRound,
    WrongSession,
)
from .fixedpoint import FixedPoint
from .models import MLP, LogisticRegression, Model, auc, log_loss
from .secagg import SecAggClient, SecAggConfig, SecAggServer
from .strategy import FedAvg, FedProx, RoundInfo, Strategy, federated_round

__all__ = [
    "MLP",
    "BadSignature",
    "DuplicateMessage",
    "FedAvg",
    "FedProx",
    "FixedPoint",
    "FixedPointError",
    "FlError",
    "InconsistentShares",
    "InconsistentSurvivors",
    "LogisticRegression",
    "MalformedMessage",
    "Misaddressed",
    "Model",
    "NotEnoughShares",
    "ProtocolViolation",
    "RoundInfo",
    "SecAggClient",
    "SecAggConfig",
    "SecAggConfigError",
    "SecAggError",
    "SecAggServer",
    "SessionAborted",
    "ShamirError",
    "Strategy",
    "TooManyDropouts",
    "UnknownSender",
    "WrongRound",
    "WrongSession",
    "auc",
    "federated_round",
    "log_loss",
]
