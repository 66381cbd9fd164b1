"""A real local EVM node for demos and tests: ganache from ``chain/evm/node_modules`` (``make evm``
installs it, pinned in ``chain/evm/package-lock.json``), on a free loopback port, with one funded
account whose key is made fresh for each start."""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from .localnet import free_port_block, stop_process

__all__ = ["GANACHE", "EvmNode", "ganache"]

GANACHE = Path(
    os.environ.get(
        "CONFIDE_GANACHE",
        Path(__file__).resolve().parents[3] / "chain" / "evm" / "node_modules" / ".bin" / "ganache",
    )
)


@dataclass
class EvmNode:
    url: str
    key: str  # the funded account's private key (0x...)
    proc: subprocess.Popen[bytes]

    def rpc(self, method: str, *params: Any) -> Any:
        r = httpx.post(self.url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
        body = r.json()
        if "error" in body:
            raise RuntimeError(body["error"])
        return body["result"]

    def mine(self, blocks: int = 1) -> None:
        for _ in range(blocks):
            self.rpc("evm_mine")

    def snapshot(self) -> str:
        return str(self.rpc("evm_snapshot"))

    def revert(self, snap: str) -> None:
        if self.rpc("evm_revert", snap) is not True:
            raise RuntimeError("evm_revert failed")


@contextmanager
def ganache(log: Path, *, instamine: str = "eager", start_ms: int | None = None) -> Iterator[EvmNode]:
    """A ganache process for the ``with`` block. ``start_ms``: the chain's clock starts there (then
    runs with the wall clock), so txs signed with a test's fake clock are fresh in its blocks."""
    if not GANACHE.exists():
        raise RuntimeError(f"{GANACHE} is missing: run 'make evm' (installs ganache from chain/evm)")
    key = "0x" + secrets.token_hex(32)
    port = free_port_block(1)
    args = [
        str(GANACHE),
        "--server.host", "127.0.0.1",
        "--server.port", str(port),
        "--chain.chainId", "1337",
        "--wallet.accounts", f"{key},1000000000000000000000000",
        "--miner.instamine", instamine,
        "--logging.quiet",
    ]  # fmt: skip
    if start_ms is not None:
        args += ["--chain.time", str(start_ms)]
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    node = EvmNode(f"http://127.0.0.1:{port}", key, proc)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                node.rpc("eth_blockNumber")
                break
            except (httpx.HTTPError, RuntimeError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"ganache did not start; see {log}") from None
                time.sleep(0.2)
        yield node
    finally:
        stop_process(proc)
