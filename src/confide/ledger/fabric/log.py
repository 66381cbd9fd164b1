"""The ordered log of signed Confide transactions kept by the ``ConfideLog`` chaincode on a Fabric
channel (``chain/fabric/chaincode``), through the Gateway client (``gateway.py``).

* **Append**: one ``Append`` transaction per batch (endorsed, ordered, validated). Two appenders
  that endorsed against the same count collide at validation: the later one is marked
  ``MVCC_READ_CONFLICT`` and changes nothing, and is endorsed again here. A retried append whose
  first try had in fact committed lands twice; the deriver skips the copy.
* **Read**: the chaincode's ``Appended`` events over the Gateway's event stream, in block order
  (Fabric's ordering is final: no reorganization). The entries are numbered by the chaincode, so a
  reader checks each batch starts where the last one ended. A batch's number is the number of its
  last entry; the cursor keeps where its event was (``<fabric block>.<tx id>``), so a restarted
  reader resumes the stream right after it.
* **Tip**: ``Count`` (evaluated) − 1, the last entry number a reader may read now.
"""

from __future__ import annotations

import base64
import json
import queue
import random
import threading
import time
from typing import Any

from fabric_protos.peer import transaction_pb2

from ..ordered_log import Cursor, LogEntry
from .gateway import ChaincodeEvents, FabricCommitError, FabricError, FabricGateway, Submitted

__all__ = ["FabricLog", "FabricReader"]

MAX_BATCH_BYTES = 1 << 20  # the chaincode's per-entry limit; keeps a batch well under a block's 10 MB
MVCC_RETRIES = 20


class FabricLog:
    def __init__(self, gateway: FabricGateway) -> None:
        self.gateway = gateway

    def init(self, tag: bytes) -> Submitted:
        """Bind a freshly deployed chaincode to one consortium (once)."""
        return self.gateway.submit("Init", tag.hex())

    def tag(self) -> bytes:
        return bytes.fromhex(self.gateway.evaluate("Tag").decode())

    def count(self) -> int:
        return int(self.gateway.evaluate("Count").decode() or "0")

    def append(self, batch: list[bytes]) -> Submitted:
        body = json.dumps([base64.b64encode(e).decode("ascii") for e in batch])
        for attempt in range(MVCC_RETRIES):
            try:
                return self.gateway.submit("Append", body)
            except FabricCommitError as exc:
                if exc.code != transaction_pb2.MVCC_READ_CONFLICT:
                    raise
                time.sleep(random.uniform(0, 0.02 * (attempt + 1)))  # another appender won the count
        raise FabricError(
            f"the append lost {MVCC_RETRIES} times in a row to other appenders (MVCC conflicts)"
        )

    def close(self) -> None:
        self.gateway.close()


def _anchor(block_number: int, tx_id: str) -> str:
    return f"{block_number}.{tx_id}"


class FabricReader:
    """Reads the ``Appended`` events after a cursor (``poll`` like the EVM ``LogReader``); a thread
    keeps the Gateway stream open and hands events over."""

    def __init__(self, log: FabricLog, cursor: Cursor | None = None, *, wait_s: float = 30.0) -> None:
        self.log, self.wait_s = log, wait_s
        self.cursor = cursor or Cursor()
        block, _, tx_id = self.cursor.block_hash.partition(".")
        start = int(block) if block.isdigit() else 0
        self._queue: queue.Queue[Any] = queue.Queue()
        self._stream: ChaincodeEvents = log.gateway.events(start, tx_id)
        threading.Thread(target=self._pump, name="fabric-events", daemon=True).start()

    def _pump(self) -> None:
        try:
            for resp in self._stream:
                self._queue.put(resp)
            self._queue.put(FabricError("the gateway ended the chaincode event stream"))
        except Exception as exc:
            self._queue.put(exc)

    def poll(self) -> tuple[list[LogEntry], list[LogEntry]]:
        """Every entry committed when the call starts (``Count``), in order; waits for the stream
        to deliver them (at most ``wait_s``)."""
        target = self.log.count() - 1
        deadline = time.monotonic() + self.wait_s
        entries: list[LogEntry] = []
        while True:
            behind = self.cursor.block_number < target
            try:
                item = (
                    self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                    if behind
                    else self._queue.get_nowait()
                )
            except queue.Empty:
                if behind:
                    raise FabricError(
                        f"the chaincode event stream did not deliver entries up to {target} "
                        f"in {self.wait_s} s"
                    ) from None
                return entries, []
            if isinstance(item, Exception):
                self._queue.put(item)  # this reader is done; the deriver starts a new one
                raise item
            for event in item.events:
                if event.event_name != "Appended":
                    continue
                try:
                    doc = json.loads(event.payload)
                    first, raw = (
                        int(doc["first"]),
                        [base64.b64decode(e, validate=True) for e in doc["entries"]],
                    )
                    time_ms = int(doc["time"])
                except (ValueError, KeyError, TypeError) as exc:
                    raise FabricError(
                        f"a malformed Appended event in block {item.block_number}: {exc}"
                    ) from None
                if first != self.cursor.block_number + 1 or not raw:
                    raise FabricError(
                        f"the log's events skip: expected entry {self.cursor.block_number + 1}, got {first} "
                        f"(block {item.block_number})"
                    )
                last, anchor = first + len(raw) - 1, _anchor(item.block_number, event.tx_id)
                for i, e in enumerate(raw):
                    entries.append(LogEntry(first + i, e, last, anchor, time_ms, i, event.tx_id))
                self.cursor = Cursor(last, anchor)

    def close(self) -> None:
        self._stream.cancel()
