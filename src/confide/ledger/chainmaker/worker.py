"""Out-of-process worker for the ``chainmaker`` backend: run by the Python of ChainMaker's own venv.

ChainMaker's official Python SDK (``chainmaker==3.0.7``) ships generated protobuf modules whose
proto package names (``common``, ``config``, ...) clash with Hyperledger Fabric's in one descriptor
pool, and it needs a shim for ``pysha3`` on Python 3.11; so it lives in ``.chainmaker-venv`` (``make
chainmaker-env``) and this file imports nothing but the standard library, the SDK and its
dependencies. :mod:`confide.ledger.chainmaker.log` starts it as ``<venv python> -I worker.py
SDK_CONFIG`` and talks JSON lines over its stdin/stdout, one request, one answer:

1. the worker loads ``sdk_config.yml`` into the SDK's ``ChainClient`` and prints ``{"ready": true,
   "sdk": VERSION, "chain_id", "org_id", "nodes"}`` (or ``{"error": TEXT}`` and exits);
2. each request is ``{"op": ..., ...}``, each answer an object or ``{"error": TEXT}``; bytes travel
   as base64, hashes as hex:

   * ``deploy {contract, bytecode (hex), tag (b64), version, timeout_s}``: ``CONTRACT_MANAGE`` /
     ``INIT_CONTRACT``, runtime ``EVM``, constructor argument ``bytes32 tag``, endorsed by the
     ``endorsers`` of ``sdk_config.yml`` → ``{tx_id, block}``;
   * ``call {contract, method}``: an EVM view method without arguments (``tag``, ``count``) →
     ``{output (b64)}``;
   * ``append {contract, entries [b64], timeout_s}``: ``append(bytes[])`` → ``{tx_id, block,
     block_hash}`` once the transaction is in a block and succeeded;
   * ``head {}`` → ``{height, hash, time}`` of the last block (time in seconds);
   * ``block_hash {height}`` → ``{hash}`` (null past the last block);
   * ``read {contract, from, limit}``: the contract's ``Appended`` events in blocks ``from`` ..
     ``from + limit - 1`` (not past the last block) → ``{last: {height, hash} | null, batches:
     [{height, hash, time, entries: [{seq, tx (b64), tx_id, index}]}]}``.

What the SDK does is used as it is: ``ChainClient.from_conf``, its payload builders, signing
(``User.sign``), ``calc_evm_method_params`` / ``calc_evm_params`` for the ABI encoding, its queries.
One workaround: in 3.0.7 ``invoke_contract`` / ``create_contract`` lose the payload
(``_estimate_and_attach_gas`` returns None), so the payload is built with ``get_tx_request`` /
``create_contract_create_payload`` and sent with ``send_tx_request`` / ``send_contract_manage_request``,
and the result is polled here (the SDK's own poll sleeps whole seconds).

The SDK logs to stderr; fd 1 is moved there too, so nothing can corrupt the protocol.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import sys
import time
import warnings
from importlib import metadata
from typing import Any

import grpc
from chainmaker.chain_client import ChainClient
from chainmaker.exceptions import RequestError, RpcConnectError
from chainmaker.protos.common.result_pb2 import TxStatusCode
from chainmaker.utils import address_utils
from chainmaker.utils.evm_utils import calc_evm_method_params
from eth_abi.abi import decode as abi_decode

APPENDED_TOPIC = address_utils.keccak_256(b"Appended(uint64,bytes)")  # Keccak-256 hex, via the sha3 shim
POLL_FIRST_S, POLL_MAX_S = 0.02, 0.25

warnings.simplefilter("ignore", DeprecationWarning)  # the SDK warns about its own deprecated helpers


class WorkerError(Exception):
    """A request that cannot be done (the message says why and what to do)."""


def _protocol_out() -> Any:
    fd = os.dup(1)
    os.dup2(2, 1)
    return os.fdopen(fd, "w", buffering=1)


def _emit(out: Any, obj: dict[str, Any]) -> None:
    out.write(json.dumps(obj) + "\n")
    out.flush()


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _addresses(contract: str) -> set[str]:
    """The names a ChainMaker event may carry for ``contract``: its name or its EVM address."""
    addr = address_utils.name2addr(contract).lower()
    return {contract, addr, "0x" + addr}


class Worker:
    def __init__(self, sdk_config: str) -> None:
        self.cc = ChainClient.from_conf(sdk_config)
        logging.getLogger("sdk").setLevel(logging.WARNING)

    def hello(self) -> dict[str, Any]:
        return {
            "ready": True,
            "sdk": metadata.version("chainmaker"),
            "chain_id": self.cc.chain_id,
            "org_id": self.cc.user.org_id,
            "nodes": [n.node_addr for n in self.cc.nodes],
        }

    # -- writes ----------------------------------------------------------------------------------------
    def _wait(self, tx_id: str, timeout_s: float, what: str) -> Any:
        """The committed transaction's ``TransactionInfo``; its result must be a success."""
        deadline, delay = time.monotonic() + timeout_s, POLL_FIRST_S
        while True:
            try:
                info = self.cc.get_tx_by_tx_id(tx_id)
                break
            except RequestError as exc:  # not in a block yet (ChainMaker answers CONTRACT_FAIL)
                if time.monotonic() > deadline:
                    raise WorkerError(
                        f"the {what} transaction {tx_id} was accepted but is not in a block after "
                        f"{timeout_s:.0f} s (is the chain producing blocks? its tx pool full?); the "
                        f"node's last answer: {_refusal(exc)}"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, POLL_MAX_S)
        result = info.transaction.result
        if result.code != TxStatusCode.SUCCESS or result.contract_result.code != 0:
            raise WorkerError(
                f"the {what} transaction {tx_id} failed on the chain: "
                f"{TxStatusCode.Name(result.code)}: {result.contract_result.message or result.message}"
            )
        return info

    def deploy(self, req: dict[str, Any]) -> dict[str, Any]:
        tag = base64.b64decode(req["tag"])
        if len(tag) != 32:
            raise WorkerError("the log's tag is 32 bytes")
        payload = self.cc.create_contract_create_payload(
            req["contract"],
            str(req.get("version", "1.0")),
            str(req["bytecode"]).removeprefix("0x").encode("ascii"),  # hex, as the SDK loads EVM code
            "EVM",
            [{"bytes32": tag}],
        )
        if not self.cc.endorsers:
            raise WorkerError(
                "deploying a contract needs endorsements by the chain's org admins: list them under "
                "chain_client.endorsers in sdk_config.yml (or deploy with cmc)"
            )
        endorsements = [u.sign(payload.SerializeToString()) for u in self.cc.endorsers]
        self.cc.send_contract_manage_request(payload, endorsements, with_sync_result=False)
        info = self._wait(payload.tx_id, float(req.get("timeout_s", 60)), "deploy")
        return {"tx_id": payload.tx_id, "block": int(info.block_height)}

    def append(self, req: dict[str, Any]) -> dict[str, Any]:
        entries = [base64.b64decode(e) for e in req["entries"]]
        if not entries:
            raise WorkerError("an empty batch")
        method, params = calc_evm_method_params("append", [{"bytes[]": entries}])
        tx = self.cc.get_tx_request(req["contract"], method, params)
        self.cc.send_tx_request(tx, with_sync_result=False)
        info = self._wait(tx.payload.tx_id, float(req.get("timeout_s", 60)), "append")
        return {
            "tx_id": tx.payload.tx_id,
            "block": int(info.block_height),
            "block_hash": info.block_hash.hex(),
        }

    # -- reads -------------------------------------------------------------------------------------------
    def call(self, req: dict[str, Any]) -> dict[str, Any]:
        method, params = calc_evm_method_params(str(req["method"]), [])
        resp = self.cc.query_contract(req["contract"], method, params)
        return {"output": _b64(bytes(resp.contract_result.result))}

    def head(self, req: dict[str, Any]) -> dict[str, Any]:
        h = self.cc.get_last_block().block.header
        return {"height": int(h.block_height), "hash": h.block_hash.hex(), "time": int(h.block_timestamp)}

    def block_hash(self, req: dict[str, Any]) -> dict[str, Any]:
        try:
            h = self.cc.get_block_by_height(int(req["height"])).block.header
        except RequestError:
            return {"hash": None}
        return {"hash": h.block_hash.hex()}

    def read(self, req: dict[str, Any]) -> dict[str, Any]:
        names = _addresses(req["contract"])
        first, limit = int(req["from"]), max(1, int(req["limit"]))
        tip = self.head({})["height"]
        last: dict[str, Any] | None = None
        batches = []
        for height in range(first, min(first + limit - 1, tip) + 1):
            block = self.cc.get_block_by_height(height).block
            h = block.header
            entries = []
            index = 0
            for tx in block.txs:
                r = tx.result
                ok = r.code == TxStatusCode.SUCCESS and r.contract_result.code == 0
                for ev in r.contract_result.contract_event:
                    if ok and ev.contract_name.lower() in names and ev.topic == APPENDED_TOPIC:
                        if len(ev.event_data) != 2:
                            raise WorkerError(f"an Appended event in block {height} has a foreign shape")
                        (signed,) = abi_decode(["bytes"], bytes.fromhex(ev.event_data[1]))
                        seq = int(ev.event_data[0], 16)
                        entries.append({"seq": seq, "tx": _b64(signed), "tx_id": ev.tx_id, "index": index})
                    index += 1
            if entries:
                batches.append(
                    {
                        "height": height,
                        "hash": h.block_hash.hex(),
                        "time": int(h.block_timestamp),
                        "entries": entries,
                    }
                )
            last = {"height": height, "hash": h.block_hash.hex()}
        return {"last": last, "batches": batches}


OPS = {"deploy", "append", "call", "head", "block_hash", "read"}


def _refusal(exc: RequestError) -> str:
    """``CODE: message`` from the SDK's error (its code is a name or a number; some of its paths glue
    the code's name to the message)."""
    code = exc.err_code
    name = TxStatusCode.Name(code) if isinstance(code, int) and code in TxStatusCode.values() else str(code)
    msg = str(exc.err_msg).removeprefix(name).strip() or name
    return f"{name}: {msg}"


def _describe(exc: BaseException, worker: Worker | None) -> str:
    if isinstance(exc, RequestError):
        return f"the ChainMaker node refused: {_refusal(exc)}"
    if isinstance(exc, grpc.RpcError | RpcConnectError):
        where = ", ".join(n.node_addr for n in worker.cc.nodes) if worker else "the node"
        details = exc.details() if isinstance(exc, grpc.RpcError) and hasattr(exc, "details") else str(exc)
        return (
            f"cannot reach the ChainMaker node at {where}: {details} (is it running? check "
            "chain_client.nodes: node_addr, enable_tls, trust_root_paths, tls_host_name in sdk_config.yml)"
        )
    if isinstance(exc, WorkerError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def main(argv: list[str]) -> None:
    out = _protocol_out()
    if len(argv) != 2:
        _emit(out, {"error": "usage: worker.py SDK_CONFIG"})
        raise SystemExit(2)
    config = os.path.abspath(argv[1])
    os.chdir(os.path.dirname(config))  # relative paths in sdk_config.yml are taken from its folder
    try:
        worker = Worker(config)
    except Exception as exc:  # a broken sdk_config.yml, unreadable keys
        _emit(out, {"error": f"cannot load {argv[1]} into the ChainMaker SDK: {_describe(exc, None)}"})
        raise SystemExit(1) from None
    _emit(out, worker.hello())
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            op = req.get("op")
            if op not in OPS:
                raise WorkerError(f"unknown op {op!r}")
            _emit(out, getattr(worker, op)(req))
        except Exception as exc:
            _emit(out, {"error": _describe(exc, worker)})


if __name__ == "__main__":
    main(sys.argv)
