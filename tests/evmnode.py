"""The tests' local EVM node: ``confide.scenarios.evmchain`` (ganache from ``chain/evm``)."""

from confide.scenarios.evmchain import EvmNode, ganache

__all__ = ["EvmNode", "ganache"]
