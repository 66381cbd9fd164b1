"""The peer's end of Fabric's chaincode shim protocol, talking to a real chaincode server.

A Fabric peer runs chaincode "as a service" (CCaaS) by dialling the chaincode's gRPC server
(``protos.Chaincode/Connect``) and holding one bidirectional stream: the chaincode sends REGISTER,
the peer answers REGISTERED and READY; for each proposal the peer sends TRANSACTION (the invocation
args and the signed proposal) and answers the chaincode's GET_STATE / PUT_STATE / DEL_STATE /
GET_STATE_BY_RANGE / QUERY_STATE_CLOSE requests from its simulator until the chaincode sends
COMPLETED (its response and event) or ERROR. This module is that peer side, so the stand-in peer
runs the project's real Node.js chaincode (``chain/fabric/chaincode``, fabric-shim 2.5) unchanged.
"""

from __future__ import annotations

import queue
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
from fabric_protos.ledger.queryresult import kv_query_result_pb2
from fabric_protos.peer import (
    chaincode_event_pb2,
    chaincode_pb2,
    chaincode_shim_pb2,
    chaincode_shim_pb2_grpc,
    proposal_pb2,
    proposal_response_pb2,
)

from ..errors import LedgerError

__all__ = ["ChaincodeConnection", "ChaincodeShimError", "Outcome", "Simulation"]

M = chaincode_shim_pb2.ChaincodeMessage


class ChaincodeShimError(LedgerError):
    """The chaincode server is unreachable or broke the shim protocol."""


@dataclass
class Simulation:
    """One proposal's view of the world state: reads record the version they saw, writes are kept
    aside (not visible to later reads, as in Fabric) until the transaction is validated."""

    namespace: str
    get: Callable[[str], tuple[bytes, tuple[int, int]] | None]  # committed value and version
    scan: Callable[[str, str], list[tuple[str, bytes, tuple[int, int]]]]  # [start, end) in key order
    reads: dict[str, tuple[int, int] | None] = field(default_factory=dict)
    range_reads: list[tuple[str, str, list[tuple[str, tuple[int, int]]]]] = field(default_factory=list)
    writes: dict[str, bytes | None] = field(default_factory=dict)  # None: delete


@dataclass(frozen=True)
class Outcome:
    response: proposal_response_pb2.Response
    event: chaincode_event_pb2.ChaincodeEvent | None


class ChaincodeConnection:
    """One stream to a chaincode server; :meth:`execute` runs one transaction at a time."""

    def __init__(self, address: str, *, timeout_s: float = 30.0) -> None:
        self.address, self.timeout_s = address, timeout_s
        self._grpc = grpc.insecure_channel(address)
        try:
            grpc.channel_ready_future(self._grpc).result(timeout=timeout_s)
        except grpc.FutureTimeoutError:
            raise ChaincodeShimError(f"no chaincode server answers at {address} (is it started?)") from None
        self._out: queue.Queue[chaincode_shim_pb2.ChaincodeMessage | None] = queue.Queue()
        self._in: queue.Queue[chaincode_shim_pb2.ChaincodeMessage | Exception] = queue.Queue()
        stub = chaincode_shim_pb2_grpc.ChaincodeStub(self._grpc)
        self._call = stub.Connect(iter(self._out.get, None))
        threading.Thread(target=self._read, name="chaincode-stream", daemon=True).start()
        self._lock = threading.Lock()
        first = self._next()
        if first.type != M.REGISTER:
            raise ChaincodeShimError(f"the chaincode opened with {M.Type.Name(first.type)}, not REGISTER")
        self.chaincode_id = chaincode_pb2.ChaincodeID.FromString(first.payload).name
        self._out.put(M(type=M.REGISTERED))
        self._out.put(M(type=M.READY))

    def _read(self) -> None:
        try:
            for msg in self._call:
                self._in.put(msg)
            self._in.put(ChaincodeShimError("the chaincode server closed the stream"))
        except grpc.RpcError as err:
            self._in.put(ChaincodeShimError(f"the chaincode stream broke: {err.details()}"))

    def _next(self) -> chaincode_shim_pb2.ChaincodeMessage:
        try:
            msg = self._in.get(timeout=self.timeout_s)
        except queue.Empty:
            raise ChaincodeShimError(f"the chaincode did not answer within {self.timeout_s} s") from None
        if isinstance(msg, Exception):
            self._in.put(msg)  # every later call fails the same way
            raise msg
        return msg

    def execute(
        self,
        channel: str,
        tx_id: str,
        signed: proposal_pb2.SignedProposal,
        args: list[bytes],
        sim: Simulation,
    ) -> Outcome:
        with self._lock:
            self._out.put(
                M(
                    type=M.TRANSACTION,
                    payload=chaincode_pb2.ChaincodeInput(args=args).SerializeToString(),
                    txid=tx_id,
                    channel_id=channel,
                    proposal=signed,
                )
            )
            while True:
                msg = self._next()
                if msg.txid != tx_id:
                    raise ChaincodeShimError(f"the chaincode answered for tx {msg.txid!r} during {tx_id!r}")
                if msg.type == M.COMPLETED:
                    event = msg.chaincode_event if msg.HasField("chaincode_event") else None
                    return Outcome(proposal_response_pb2.Response.FromString(msg.payload), event)
                if msg.type == M.ERROR:
                    return Outcome(
                        proposal_response_pb2.Response(status=500, message=msg.payload.decode()), None
                    )
                self._out.put(self._serve(msg, sim))

    def _serve(
        self, msg: chaincode_shim_pb2.ChaincodeMessage, sim: Simulation
    ) -> chaincode_shim_pb2.ChaincodeMessage:
        def reply(payload: bytes = b"", kind: int = M.RESPONSE) -> chaincode_shim_pb2.ChaincodeMessage:
            return M(type=kind, payload=payload, txid=msg.txid, channel_id=msg.channel_id)

        if msg.type == M.GET_STATE:
            key = chaincode_shim_pb2.GetState.FromString(msg.payload).key
            got = sim.get(key)
            sim.reads.setdefault(key, got[1] if got else None)
            return reply(got[0] if got else b"")
        if msg.type == M.PUT_STATE:
            put = chaincode_shim_pb2.PutState.FromString(msg.payload)
            sim.writes[put.key] = bytes(put.value)
            return reply()
        if msg.type == M.DEL_STATE:
            sim.writes[chaincode_shim_pb2.DelState.FromString(msg.payload).key] = None
            return reply()
        if msg.type == M.GET_STATE_BY_RANGE:
            rq = chaincode_shim_pb2.GetStateByRange.FromString(msg.payload)
            rows = sim.scan(rq.startKey, rq.endKey)
            sim.range_reads.append((rq.startKey, rq.endKey, [(k, v) for k, _, v in rows]))
            results = [
                chaincode_shim_pb2.QueryResultBytes(
                    resultBytes=kv_query_result_pb2.KV(
                        namespace=sim.namespace, key=k, value=val
                    ).SerializeToString()
                )
                for k, val, _ in rows
            ]
            qid = uuid.uuid4().hex
            return reply(
                chaincode_shim_pb2.QueryResponse(results=results, has_more=False, id=qid).SerializeToString()
            )
        if msg.type in (M.QUERY_STATE_NEXT, M.QUERY_STATE_CLOSE):
            qid = chaincode_shim_pb2.QueryStateClose.FromString(msg.payload).id
            return reply(chaincode_shim_pb2.QueryResponse(has_more=False, id=qid).SerializeToString())
        return reply(f"the stand-in peer does not serve {M.Type.Name(msg.type)}".encode(), M.ERROR)

    def close(self) -> None:
        self._out.put(None)
        self._call.cancel()
        self._grpc.close()
