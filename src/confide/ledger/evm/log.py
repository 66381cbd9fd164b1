"""The EVM log of signed Confide transactions: deploy or attach, append batches, read what is confirmed.

``ConfideLog.sol`` numbers every appended transaction (``seq`` 0, 1, 2, ... over the whole log) and
emits it; nothing else. This module is the chain side of the ``evm`` ledger backend:

* :meth:`EvmLog.append` sends one chain transaction carrying a batch, signed locally with the
  submitter's account key (``eth_account``; the key never goes to the EVM node).
* :class:`LogReader` reads the ``Appended`` events of blocks at least ``confirmations`` deep, in
  order, from a resumable cursor (the last block read, number and hash). Before each read it checks
  that the cursor block is still on the canonical chain: a reorganization that reaches a block it
  already read (deeper than the confirmation depth) stops it with :class:`DeepReorg` — events it
  delivered can no longer be trusted, and nothing is applied on top of them.
* :meth:`EvmLog.ensure` waits until a batch is confirmed; when its chain transaction was dropped or
  reorganized out before that, it sends the batch again. Resending can put a Confide transaction in
  the log twice, never apply it twice: every replica applies a tx id once (the platform contract
  refuses a replay), and :class:`LogReader` reports the later copies as duplicates.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

_RECURSION_LIMIT = sys.getrecursionlimit()
from eth_account import Account  # noqa: E402
from web3 import HTTPProvider, Web3  # noqa: E402
from web3.exceptions import TransactionNotFound  # noqa: E402

from ..ordered_log import Cursor, LogEntry  # noqa: E402

# py_ecc (imported by web3) raises the interpreter's recursion limit to 100000 for its own use, which
# we never call; that limit would let deeply nested input overflow the C stack in json and friends
# (a crash instead of a RecursionError). Put it back.
sys.setrecursionlimit(_RECURSION_LIMIT)

__all__ = [
    "AppendReceipt",
    "Artifact",
    "Cursor",
    "DeepReorg",
    "EvmError",
    "EvmLog",
    "LogEntry",
    "LogReader",
    "load_artifact",
]

ARTIFACT = "ConfideLog.json"
GAS_PER_BYTE = 40  # calldata (16/byte) + log data (8/byte) + memory copies, with headroom
GAS_BASE = 60_000
GAS_PER_TX = 5_000  # one LOG2 and the loop per Confide transaction


class EvmError(Exception):
    """The EVM node refused, failed or is unreachable (the message says which and what to do)."""


class DeepReorg(EvmError):
    """A block this reader already read is no longer canonical: the chain reorganized deeper than
    the confirmation depth. Raise the depth (or investigate the chain); nothing more is read."""


@dataclass(frozen=True)
class Artifact:
    abi: list[dict[str, Any]]
    bytecode: str
    solc: str
    source_sha256: str


def load_artifact() -> Artifact:
    """The compiled ``ConfideLog`` (``make evm`` compiles it with solc-js from ``chain/evm``)."""
    try:
        raw = resources.files("confide.ledger.evm").joinpath(ARTIFACT).read_text("utf-8")
    except FileNotFoundError:
        raise EvmError(
            "the compiled ConfideLog contract is missing; run 'make evm' (it compiles "
            "chain/evm/ConfideLog.sol with the pinned solc-js)"
        ) from None
    data = json.loads(raw)
    return Artifact(data["abi"], data["bytecode"], data["solc"], data["source_sha256"])


@dataclass(frozen=True)
class AppendReceipt:
    chain_tx: str
    block_number: int
    block_hash: str
    first_seq: int
    count: int
    resent: int  # how many times the batch had to be sent again


class EvmLog:
    """One deployed ``ConfideLog`` on one EVM chain, reached through ``rpc_url``."""

    def __init__(self, rpc_url: str, address: str, account_key: str, *, timeout_s: float = 30.0) -> None:
        self.w3 = Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": timeout_s}))
        self.artifact = load_artifact()
        self.address = Web3.to_checksum_address(address)
        self.contract = self.w3.eth.contract(address=self.address, abi=self.artifact.abi)
        self.account = Account.from_key(account_key)
        self._event = self.contract.events.Appended()

    @classmethod
    def deploy(cls, rpc_url: str, account_key: str, tag: bytes) -> EvmLog:
        """Deploy a new log bound to ``tag`` (32 bytes: the consortium's genesis digest)."""
        if len(tag) != 32:
            raise EvmError("the log's tag is 32 bytes (the consortium's genesis digest)")
        w3 = Web3(HTTPProvider(rpc_url))
        art = load_artifact()
        acct = Account.from_key(account_key)
        factory = w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
        params: Any = _fees(w3, acct.address) | {"gas": 400_000}
        tx = factory.constructor(tag).build_transaction(params)
        receipt = _send(w3, acct, tx)
        address = receipt["contractAddress"]
        if receipt["status"] != 1 or address is None:
            raise EvmError("deploying ConfideLog failed on the EVM node (see its log)")
        return cls(rpc_url, str(address), account_key)

    # -- reads -------------------------------------------------------------------------------------
    def tag(self) -> bytes:
        return bytes(self.contract.functions.tag().call())

    def count(self) -> int:
        return int(self.contract.functions.count().call())

    def head(self) -> int:
        return int(self.w3.eth.block_number)

    def block_hash(self, number: int) -> str | None:
        try:
            block = self.w3.eth.get_block(number)
        except Exception:  # a number past the head
            return None
        return Web3.to_hex(block["hash"])

    def entries(self, from_block: int, to_block: int) -> list[LogEntry]:
        """Every ``Appended`` event in the block range, in chain order."""
        if to_block < from_block:
            return []
        logs = self.w3.eth.get_logs(
            {"address": self.address, "fromBlock": from_block, "toBlock": to_block, "topics": [self._topic()]}
        )
        times: dict[int, int] = {}
        out = []
        for log in logs:
            ev = self._event.process_log(log)
            n = int(log["blockNumber"])
            if n not in times:
                times[n] = int(self.w3.eth.get_block(n)["timestamp"])
            out.append(
                LogEntry(
                    seq=int(ev["args"]["seq"]),
                    signed_tx=bytes(ev["args"]["signedTx"]),
                    block_number=n,
                    block_hash=Web3.to_hex(log["blockHash"]),
                    time_ms=times[n] * 1000,
                    log_index=int(log["logIndex"]),
                    chain_tx=Web3.to_hex(log["transactionHash"]),
                )
            )
        out.sort(key=lambda e: (e.block_number, e.log_index))
        return out

    def _topic(self) -> str:
        return Web3.to_hex(Web3.keccak(text="Appended(uint64,bytes)"))

    # -- writes ------------------------------------------------------------------------------------
    def fund(self, account_key: str, wei: int) -> None:
        """Send ``wei`` from this log's account to the account of ``account_key`` (a new node's gas)."""
        to = Account.from_key(account_key).address
        if self.w3.eth.gas_price == 0:
            return  # a chain without gas fees: nothing to fund
        tx: Any = _fees(self.w3, self.account.address) | {"to": to, "value": wei, "gas": 21_000}
        receipt = _send(self.w3, self.account, tx)
        if receipt["status"] != 1:
            raise EvmError(f"funding {to} failed on the EVM chain")

    @staticmethod
    def gas_for(batch: Sequence[bytes]) -> int:
        return GAS_BASE + GAS_PER_TX * len(batch) + GAS_PER_BYTE * sum(len(b) for b in batch)

    def split(self, entries: Sequence[bytes], max_count: int) -> list[list[bytes]]:
        """``entries`` in order, cut into batches of at most ``max_count`` that each fit in 80% of
        the chain's block gas limit (one batch is one chain transaction and so one block)."""
        budget = int(self.w3.eth.get_block("latest")["gasLimit"]) * 4 // 5
        out: list[list[bytes]] = []
        cur: list[bytes] = []
        gas = GAS_BASE
        for e in entries:
            need = GAS_PER_TX + GAS_PER_BYTE * len(e)
            if GAS_BASE + need > budget:
                raise EvmError(f"one entry of {len(e)} bytes does not fit in a block of this chain")
            if cur and (len(cur) >= max_count or gas + need > budget):
                out.append(cur)
                cur, gas = [], GAS_BASE
            cur.append(e)
            gas += need
        if cur:
            out.append(cur)
        return out

    def send(self, batch: Sequence[bytes]) -> str:
        """Send one chain transaction appending ``batch``; its hash (not yet mined, maybe never)."""
        if not batch:
            raise EvmError("an empty batch")
        gas = self.gas_for(batch)
        params: Any = _fees(self.w3, self.account.address) | {"gas": gas}
        tx = self.contract.functions.append(list(batch)).build_transaction(params)
        signed = self.account.sign_transaction(tx)
        try:
            return Web3.to_hex(self.w3.eth.send_raw_transaction(signed.raw_transaction))
        except Exception as exc:
            raise EvmError(f"the EVM node refused the append: {exc}") from None

    def confirmed(self, chain_tx: str, confirmations: int) -> dict[str, Any] | None:
        """The receipt of ``chain_tx`` once its block is ``confirmations`` deep on the canonical
        chain; None while it is not (pending, dropped, or its block was reorganized out)."""
        try:
            receipt = self.w3.eth.get_transaction_receipt(chain_tx)  # type: ignore[arg-type]
        except TransactionNotFound:
            return None
        n = int(receipt["blockNumber"])
        if self.block_hash(n) != Web3.to_hex(receipt["blockHash"]):
            return None  # the receipt names a block that is no longer canonical
        if self.head() - n < confirmations:
            return None
        if receipt["status"] != 1:
            raise EvmError(f"the append {chain_tx} reverted on the EVM chain (out of gas?)")
        return dict(receipt)

    def ensure(
        self,
        batch: Sequence[bytes],
        *,
        confirmations: int = 0,
        timeout_s: float = 60.0,
        resend_after_s: float = 5.0,
        poll_s: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
    ) -> AppendReceipt:
        """Append ``batch`` and wait until it is ``confirmations`` deep; send it again when its
        chain transaction has been neither confirmed nor seen for ``resend_after_s`` (dropped or
        reorganized out). Raises :class:`EvmError` after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        chain_tx, sent_at, resent = self.send(batch), time.monotonic(), 0
        while True:
            receipt = self.confirmed(chain_tx, confirmations)
            if receipt is not None:
                first = self._first_seq(receipt)
                return AppendReceipt(
                    chain_tx,
                    int(receipt["blockNumber"]),
                    Web3.to_hex(receipt["blockHash"]),
                    first,
                    len(batch),
                    resent,
                )
            if time.monotonic() > deadline:
                raise EvmError(
                    f"the append was not confirmed {confirmations} blocks deep in {timeout_s:.0f} s "
                    "(is the EVM node mining?)"
                )
            if time.monotonic() - sent_at > resend_after_s and not self._known(chain_tx):
                chain_tx, sent_at, resent = self.send(batch), time.monotonic(), resent + 1
            sleep(poll_s)

    def _known(self, chain_tx: str) -> bool:
        """Whether the EVM node still knows the transaction (pending or mined on the canonical chain)."""
        try:
            tx = self.w3.eth.get_transaction(chain_tx)  # type: ignore[arg-type]
        except TransactionNotFound:
            return False
        if tx["blockNumber"] is None:
            return True  # pending
        return self.block_hash(int(tx["blockNumber"])) == Web3.to_hex(tx["blockHash"])

    def _first_seq(self, receipt: dict[str, Any]) -> int:
        seqs = [int(self._event.process_log(log)["args"]["seq"]) for log in receipt["logs"]]
        return min(seqs) if seqs else -1


class LogReader:
    """Reads confirmed log entries in order from a cursor, detecting reorganizations."""

    def __init__(
        self, log: EvmLog, confirmations: int, cursor: Cursor | None = None, *, span: int = 2000
    ) -> None:
        if confirmations < 0:
            raise EvmError("confirmations must be >= 0")
        self.log, self.confirmations, self.span = log, confirmations, span
        self.cursor = cursor or Cursor()
        self.seen: set[bytes] = set()  # signed txs already delivered (duplicates from resends)

    def poll(self) -> tuple[list[LogEntry], list[LogEntry]]:
        """``(new, duplicates)``: the entries of newly confirmed blocks, and those among them whose
        signed bytes were delivered before (a resent batch). Advances the cursor."""
        c = self.cursor
        if c.block_number >= 0 and self.log.block_hash(c.block_number) != c.block_hash:
            raise DeepReorg(
                f"EVM block {c.block_number} ({c.block_hash[:18]}…) was read and is no longer on the "
                f"canonical chain: a reorganization deeper than {self.confirmations} confirmations"
            )
        safe = self.log.head() - self.confirmations
        if safe <= c.block_number:
            return [], []
        to = min(safe, c.block_number + self.span)
        entries = self.log.entries(c.block_number + 1, to)
        new: list[LogEntry] = []
        dup: list[LogEntry] = []
        for e in entries:
            (dup if e.signed_tx in self.seen else new).append(e)
            self.seen.add(e.signed_tx)
        h = self.log.block_hash(to)
        self.cursor = Cursor(to, h or "")
        return new, dup


def _fees(w3: Web3, sender: str) -> dict[str, Any]:
    return {
        "from": sender,
        "nonce": w3.eth.get_transaction_count(sender, "pending"),  # type: ignore[arg-type]
        "chainId": w3.eth.chain_id,
        "gasPrice": w3.eth.gas_price,
    }


def _send(w3: Web3, acct: Any, tx: dict[str, Any]) -> dict[str, Any]:
    signed = acct.sign_transaction(tx)
    try:
        h = w3.eth.send_raw_transaction(signed.raw_transaction)
        return dict(w3.eth.wait_for_transaction_receipt(h, timeout=60))
    except Exception as exc:
        raise EvmError(f"the EVM node refused the transaction: {exc}") from None
