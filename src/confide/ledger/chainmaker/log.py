"""ChainMaker's log of signed Confide transactions: the ``ConfideLog`` contract on ChainMaker's EVM.

The same ``chain/evm/ConfideLog.sol`` (the compiled ``ledger/evm/ConfideLog.json``) is deployed as a
ChainMaker user contract with runtime ``EVM``; ``append(bytes[])`` numbers every signed tx and emits
``Appended(seq, signedTx)``, which ChainMaker records as a contract event of the transaction (topic =
the event's signature hash, data = the indexed ``seq`` and the ABI-encoded bytes, all hex).

Everything ChainMaker-side goes through the official Python SDK, which runs out of process in its own
venv (``.chainmaker-venv``; its protobuf packages clash with Fabric's, and it needs a ``pysha3``
shim on Python 3.11): :class:`ChainMakerLog` starts :mod:`.worker` there and speaks JSON lines with
it. This module imports nothing of the SDK.

* :meth:`ChainMakerLog.append` sends one transaction per batch, signed by the node's ChainMaker client
  key (from its ``sdk_config.yml``), and returns once it is in a block and succeeded. ChainMaker's
  consensus (TBFT, Raft) makes a committed block final: there are no reorganizations.
* :class:`ChainMakerReader` reads the ``Appended`` events of every block after its cursor (the last
  block read: height and hash), in order. Before each read it checks the cursor block's hash is still
  the same; a changed hash means the node now serves another chain (a reset test chain, a wrong
  ``chain_id``), and it stops with :class:`ChainMakerError` rather than apply anything on top.
* Limits ChainMaker sets: an event's data is at most 65535 hex characters, so one signed tx is at
  most :data:`MAX_ENTRY_BYTES`; a batch travels hex-encoded in one transaction parameter, kept under
  :data:`MAX_BATCH_BYTES`.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..errors import LedgerError
from ..ordered_log import Cursor, LogEntry, split_batches

__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_ENTRY_BYTES",
    "AppendReceipt",
    "ChainMakerError",
    "ChainMakerLog",
    "ChainMakerReader",
    "chainmaker_python",
    "load_bytecode",
]

WORKER = Path(__file__).with_name("worker.py")
ARTIFACT = Path(__file__).resolve().parents[1] / "evm" / "ConfideLog.json"  # the same contract as evm
MAX_ENTRY_BYTES = 32_672
"""ABI-encoded (64 bytes of offset and length, padded to 32) it stays within ChainMaker's 65535 hex
characters of event data (``protocol.EventDataMaxLen``); a larger event fails the whole append."""
MAX_BATCH_BYTES = 256 << 10
"""A batch's entries in all; hex-encoded calldata is twice that, well inside a transaction parameter."""
READY_WAIT_S = 60.0
QUERY_WAIT_S = 90.0  # an answer to a read (the SDK's own RPC timeouts are 60 s)


class ChainMakerError(LedgerError):
    """The ChainMaker node refused, failed or is unreachable, or the SDK's venv is missing (the message
    says which and what to do)."""


def chainmaker_python() -> Path:
    """``$CONFIDE_CHAINMAKER_PYTHON``, else ``.chainmaker-venv/bin/python`` beside Confide's own venv."""
    env = os.environ.get("CONFIDE_CHAINMAKER_PYTHON")
    return Path(env) if env else Path(sys.prefix).parent / ".chainmaker-venv" / "bin" / "python"


def require_chainmaker(python: Path) -> None:
    if not python.exists():
        raise ChainMakerError(
            f"ChainMaker's SDK environment is missing ({python} does not exist): run 'make chainmaker-env' "
            "(it creates .chainmaker-venv from envs/chainmaker/requirements.txt) or set "
            "CONFIDE_CHAINMAKER_PYTHON to a Python that has the chainmaker SDK"
        )


def load_bytecode() -> str:
    """The compiled ``ConfideLog`` creation bytecode (hex, no 0x): the ``evm`` backend's artifact
    (``make evm`` compiles ``chain/evm/ConfideLog.sol`` with the pinned solc-js)."""
    try:
        data = json.loads(ARTIFACT.read_text("utf-8"))
    except FileNotFoundError:
        raise ChainMakerError(
            f"the compiled ConfideLog contract is missing ({ARTIFACT}); run 'make evm' (it compiles "
            "chain/evm/ConfideLog.sol with the pinned solc-js)"
        ) from None
    return str(data["bytecode"]).removeprefix("0x")


@dataclass(frozen=True)
class AppendReceipt:
    tx_id: str  # the ChainMaker transaction
    block_number: int
    block_hash: str


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _stop(proc: subprocess.Popen[str], stderr: IO[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for f in (proc.stdin, proc.stdout):
        if f is not None:
            f.close()
    stderr.close()


def _pump(stdout: IO[str], lines: queue.Queue[str | None]) -> None:
    try:
        for line in stdout:
            lines.put(line)
    except (OSError, ValueError):  # closed under us by close()
        pass
    lines.put(None)


class _Worker:
    """One worker process (the SDK, in ChainMaker's venv) and a thread reading its answers."""

    def __init__(self, python: Path, sdk_config: Path) -> None:
        require_chainmaker(python)
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed by _stop
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        self.proc = subprocess.Popen(
            [str(python), "-I", str(WORKER), str(sdk_config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        assert self.proc.stdout is not None
        threading.Thread(
            target=_pump, args=(self.proc.stdout, self.lines), daemon=True, name="chainmaker-worker-reader"
        ).start()
        self._finalizer = weakref.finalize(self, _stop, self.proc, self.stderr)

    def tail(self) -> str:
        try:
            self.stderr.seek(0, os.SEEK_END)
            size = self.stderr.tell()
            self.stderr.seek(max(0, size - 1500))
            return self.stderr.read().decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return ""

    def read(self, wait_s: float, what: str) -> dict[str, Any]:
        try:
            line = self.lines.get(timeout=wait_s)
        except queue.Empty:
            self.close()
            raise ChainMakerError(
                f"the ChainMaker SDK worker did not answer {what} in {wait_s:.0f} s (stopped; the next "
                "request starts a new one)"
            ) from None
        if line is None:
            self.proc.wait()
            raise ChainMakerError(
                f"the ChainMaker SDK worker exited (code {self.proc.returncode}) during {what}; its "
                f"last words:\n{self.tail()}"
            )
        try:
            answer: dict[str, Any] = json.loads(line)
        except ValueError:
            raise ChainMakerError(
                f"the ChainMaker SDK worker answered {what} with a non-JSON line: {line[:200]!r}"
            ) from None
        return answer

    def send(self, request: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the reader reports the exit with the worker's last words

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        self._finalizer()


class ChainMakerLog:
    """The ``ConfideLog`` contract ``contract_name`` on the chain ``sdk_config`` reaches, as its client."""

    def __init__(
        self,
        sdk_config: str | Path,
        contract_name: str,
        *,
        timeout_s: float = 60.0,
        python: Path | None = None,
    ) -> None:
        self.sdk_config = Path(sdk_config)
        if not self.sdk_config.is_file():
            raise ChainMakerError(
                f"the ChainMaker SDK config {self.sdk_config} does not exist (see docs/ledger-chainmaker.md "
                "for what it holds)"
            )
        self.contract_name, self.timeout_s = contract_name, timeout_s
        self.python = python or chainmaker_python()
        self._lock = threading.Lock()
        self._worker: _Worker | None = None
        self.chain_id, self.org_id, self.sdk_version = "", "", ""
        self.nodes: list[str] = []
        with self._lock:
            self._start()

    def _start(self) -> _Worker:
        w = _Worker(self.python, self.sdk_config)
        hello = w.read(READY_WAIT_S, "its start")
        if "error" in hello:
            w.close()
            raise ChainMakerError(str(hello["error"]))
        self.chain_id, self.org_id = str(hello["chain_id"]), str(hello["org_id"])
        self.sdk_version, self.nodes = str(hello["sdk"]), [str(n) for n in hello["nodes"]]
        self._worker = w
        return w

    def _call(self, op: str, wait_s: float = QUERY_WAIT_S, **args: Any) -> dict[str, Any]:
        with self._lock:
            w = self._worker if self._worker is not None and self._worker.alive else self._start()
            w.send({"op": op, **args})
            answer = w.read(wait_s, f"'{op}'")
        if "error" in answer:
            raise ChainMakerError(f"ChainMaker {op} via {', '.join(self.nodes)}: {answer['error']}")
        return answer

    @classmethod
    def deploy(
        cls,
        sdk_config: str | Path,
        contract_name: str,
        tag: bytes,
        *,
        timeout_s: float = 60.0,
        python: Path | None = None,
    ) -> ChainMakerLog:
        """Create the contract (runtime EVM) bound to ``tag`` (32 bytes: ``log_tag(chain id)``). The SDK
        config must list the org admins whose endorsements the chain's policy for ``CONTRACT_MANAGE``
        needs (``chain_client.endorsers``)."""
        if len(tag) != 32:
            raise ChainMakerError("the log's tag is 32 bytes (ledger.ordered_log.log_tag)")
        log = cls(sdk_config, contract_name, timeout_s=timeout_s, python=python)
        try:
            log._call(
                "deploy",
                timeout_s + 30,
                contract=contract_name,
                bytecode=load_bytecode(),
                tag=_b64(tag),
                timeout_s=timeout_s,
            )
        except BaseException:
            log.close()
            raise
        return log

    # -- reads -------------------------------------------------------------------------------------------
    def _view(self, method: str) -> bytes:
        try:
            out = base64.b64decode(self._call("call", contract=self.contract_name, method=method)["output"])
        except ChainMakerError as exc:
            if "not exist" not in str(exc):
                raise
            raise ChainMakerError(
                f"{exc} (is the ConfideLog contract '{self.contract_name}' deployed on chain "
                f"{self.chain_id}? see docs/ledger-chainmaker.md)"
            ) from None
        if len(out) != 32:
            raise ChainMakerError(
                f"the contract '{self.contract_name}' on chain {self.chain_id} answered {method}() with "
                f"{len(out)} bytes: it is not a ConfideLog"
            )
        return out

    def tag(self) -> bytes:
        return self._view("tag")

    def count(self) -> int:
        return int.from_bytes(self._view("count"), "big")

    def head_block(self) -> tuple[int, str, int]:
        """The last block: (height, hash, time in ms)."""
        h = self._call("head")
        return int(h["height"]), str(h["hash"]), int(h["time"]) * 1000

    def head(self) -> int:
        return self.head_block()[0]

    def now_ms(self) -> int:
        """The chain's time: the last block's (ChainMaker stamps blocks in whole seconds)."""
        return self.head_block()[2]

    def block_hash(self, height: int) -> str | None:
        h = self._call("block_hash", height=height)["hash"]
        return None if h is None else str(h)

    def batches(
        self, first: int, limit: int
    ) -> tuple[tuple[int, str] | None, list[tuple[int, str, int, list[LogEntry]]]]:
        """Blocks ``first`` .. ``first + limit - 1`` (not past the last): the last block read (height,
        hash), and each block with ``Appended`` events: (height, hash, time ms, entries in order)."""
        out = self._call("read", contract=self.contract_name, limit=limit, **{"from": first})
        last = None if out["last"] is None else (int(out["last"]["height"]), str(out["last"]["hash"]))
        batches = []
        for b in out["batches"]:
            n, h, t = int(b["height"]), str(b["hash"]), int(b["time"]) * 1000
            entries = [
                LogEntry(int(e["seq"]), base64.b64decode(e["tx"]), n, h, t, int(e["index"]), str(e["tx_id"]))
                for e in b["entries"]
            ]
            batches.append((n, h, t, entries))
        return last, batches

    # -- writes ------------------------------------------------------------------------------------------
    @staticmethod
    def split(entries: Sequence[bytes], max_count: int) -> list[list[bytes]]:
        for e in entries:
            if len(e) > MAX_ENTRY_BYTES:
                raise ChainMakerError(
                    f"a signed tx of {len(e)} bytes is larger than a ChainMaker contract event carries "
                    f"({MAX_ENTRY_BYTES} bytes: 65535 hex characters of event data)"
                )
        return split_batches(entries, max_count, MAX_BATCH_BYTES, "a ChainMaker")

    def append(self, batch: Sequence[bytes]) -> AppendReceipt:
        """Append one batch; returns once its transaction is in a block and succeeded."""
        if not batch:
            raise ChainMakerError("an empty batch")
        out = self._call(
            "append",
            self.timeout_s + 30,
            contract=self.contract_name,
            entries=[_b64(e) for e in batch],
            timeout_s=self.timeout_s,
        )
        return AppendReceipt(str(out["tx_id"]), int(out["block"]), str(out["block_hash"]))

    def close(self) -> None:
        with self._lock:
            if self._worker is not None:
                self._worker.close()
                self._worker = None


class ChainMakerReader:
    """Reads the log's entries block by block after a cursor (``poll`` like the etcd and EVM readers)."""

    def __init__(self, log: ChainMakerLog, cursor: Cursor | None = None, *, span: int = 200) -> None:
        self.log, self.span = log, span
        self.cursor = cursor or Cursor()

    def poll(self) -> tuple[list[LogEntry], list[LogEntry]]:
        """``(new, [])``: the entries of the blocks after the cursor (at most ``span`` blocks); advances
        the cursor to the last block read. Copies of a resent batch are left to the deriver (it skips a
        tx already on the chain)."""
        c = self.cursor
        if c.block_number >= 0:
            now = self.log.block_hash(c.block_number)
            if now != c.block_hash:
                raise ChainMakerError(
                    f"ChainMaker block {c.block_number} ({c.block_hash[:16]}…) was read and is now "
                    f"{'missing' if now is None else now[:16] + '…'}: the node serves another chain than "
                    f"the one this ledger was derived from (a reset chain? another chain id?); ChainMaker "
                    "blocks are final, so nothing more is read"
                )
        last, batches = self.log.batches(c.block_number + 1, self.span)
        entries = [e for _, _, _, es in batches for e in es]
        if last is not None:
            self.cursor = Cursor(last[0], last[1])
        return entries, []
