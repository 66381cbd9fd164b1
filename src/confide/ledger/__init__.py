"""Ledger layer: transactions, blocks, the platform contract and chain backends."""

from typing import Any

from . import embedded as _embedded  # noqa: F401  (registers 'embedded' and 'memory')
from . import remote as _remote  # noqa: F401  (registers 'remote')
from .backend import (
    Head,
    InclusionProof,
    LedgerBackend,
    Receipt,
    available_backends,
    open_backend,
    verify_proof,
)
from .backend import register_backend as _register
from .block import Block, BlockHeader, verify_block
from .codes import Code, Result
from .contract import TX_TYPES, BlockInfo, Contract
from .errors import ChainCorrupted, GenesisError, LedgerError, TxRefused, UnknownBackend
from .genesis import Genesis, GenesisOrg, Params, load_genesis
from .tx import SignedTx, Tx, build_tx, decode_tx

__all__ = [
    "TX_TYPES",
    "Block",
    "BlockHeader",
    "BlockInfo",
    "ChainCorrupted",
    "Code",
    "Contract",
    "Genesis",
    "GenesisError",
    "GenesisOrg",
    "Head",
    "InclusionProof",
    "LedgerBackend",
    "LedgerError",
    "Params",
    "Receipt",
    "Result",
    "SignedTx",
    "Tx",
    "TxRefused",
    "UnknownBackend",
    "available_backends",
    "build_tx",
    "decode_tx",
    "load_genesis",
    "open_backend",
    "verify_block",
    "verify_proof",
]


def _evm_backend(**kwargs: Any) -> LedgerBackend:
    """``evm``: imported on first use (web3 is only needed by consortia on an EVM chain)."""
    from .evm.backend import EvmBackend

    return EvmBackend(**kwargs)


_register("evm", _evm_backend)


def _etcd_backend(**kwargs: Any) -> LedgerBackend:
    """``etcd``: an etcd cluster (Raft) orders; every node derives the blocks."""
    from .etcd.backend import EtcdBackend

    return EtcdBackend(**kwargs)


_register("etcd", _etcd_backend)


def _fabric_backend(**kwargs: Any) -> LedgerBackend:
    """``fabric``: a Fabric channel orders (the ConfideLog chaincode, through the Gateway)."""
    from .fabric.backend import FabricBackend

    return FabricBackend(**kwargs)


_register("fabric", _fabric_backend)


def _chainmaker_backend(**kwargs: Any) -> LedgerBackend:
    """``chainmaker``: a ChainMaker chain orders (ConfideLog.sol on its EVM, through the official SDK
    in its own venv)."""
    from .chainmaker.backend import ChainMakerBackend

    return ChainMakerBackend(**kwargs)


_register("chainmaker", _chainmaker_backend)
