"""A protocol-level stand-in of a Fabric network's Gateway peer, built from the same fabric-protos.

No Fabric network runs on this machine, so the ``fabric`` backend is tested against this: one
process that serves the real ``gateway.Gateway`` gRPC service and does, in one place, what a gateway
peer, its ordering service and its committing peers do for one channel:

* **Endorse / Evaluate**: checks the signed proposal (creator certificate issued by a channel MSP's
  CA, low-S ECDSA signature, tx id = sha256(nonce || creator), channel and chaincode), runs the
  project's **real chaincode** (the Node.js ``chain/fabric/chaincode`` as a chaincode server, over
  the shim protocol: ``shim.py``) on a simulation of the world state, and returns the prepared
  envelope with the read/write set, the event and its own endorsement signature.
* **Submit**: checks the envelope's signature by its creator, queues it for ordering; blocks are cut
  every ``batch_timeout_s``.
* **Commit** (each block, in order, as a committing peer validates): a well-formed endorser
  transaction, a valid endorsement by a channel member's peer over the exact response payload, no
  duplicate tx id, and every key read still at the version read (else ``MVCC_READ_CONFLICT``; ranges
  read: ``PHANTOM_READ_CONFLICT``); only valid transactions change the state and emit events.
* **CommitStatus / ChaincodeEvents**: signed requests; commit status waits for the block; events
  stream from a block number (after a tx id), then live.

TLS: with ``tls`` in its config the Gateway is served over TLS (server authentication, as a peer's
client port; the clients trust its TLS CA).

What it does not do: consensus or a second peer (one process orders and commits; a real channel has
Raft or BFT orderers and an endorsement policy over several orgs' peers), mutual TLS, persistence (the
chain lives in memory for the process's life), private data, channel config updates. Several
chaincode names may be served (one world-state namespace each) by the one chaincode server, so each
test gets a fresh log.

Run: ``python -m confide.ledger.fabric.standin CONFIG.json`` (see ``scenarios/fabricnet.py``).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import grpc
from fabric_protos.common import common_pb2
from fabric_protos.gateway import gateway_pb2, gateway_pb2_grpc
from fabric_protos.ledger.rwset import rwset_pb2
from fabric_protos.ledger.rwset.kvrwset import kv_rwset_pb2
from fabric_protos.peer import (
    chaincode_event_pb2,
    chaincode_pb2,
    proposal_pb2,
    proposal_response_pb2,
    transaction_pb2,
)

from .msp import FabricIdentity, FabricIdentityError, MspVerifier
from .protocol import ParsedProposal, parse_proposal, proposal_hash, transaction_parts
from .shim import ChaincodeConnection, ChaincodeShimError, Outcome, Simulation

__all__ = ["StandInPeer", "main", "serve"]

V = transaction_pb2.TxValidationCode
Version = tuple[int, int]  # (block number, tx number in the block)


def _status_details(code: grpc.StatusCode, message: str, details: list[gateway_pb2.ErrorDetail]) -> bytes:
    """A google.rpc.Status carrying gateway.ErrorDetail entries, as the Fabric gateway sends them."""

    def ld(num: int, raw: bytes) -> bytes:
        out, n = bytearray([num << 3 | 2]), len(raw)
        while n > 0x7F:
            out.append(n & 0x7F | 0x80)
            n >>= 7
        out.append(n)
        return bytes(out) + raw

    body = bytes([0x08, code.value[0]]) + ld(2, message.encode())
    for d in details:
        body += ld(3, ld(1, b"type.googleapis.com/gateway.ErrorDetail") + ld(2, d.SerializeToString()))
    return body


@dataclass
class _Tx:
    tx_id: str
    code: int
    events: list[chaincode_event_pb2.ChaincodeEvent]


@dataclass
class _Block:
    number: int
    txs: list[_Tx]


class StandInPeer(gateway_pb2_grpc.GatewayServicer):  # type: ignore[misc]
    def __init__(
        self,
        *,
        channel: str,
        chaincodes: list[str],
        msp: MspVerifier,
        peer: FabricIdentity,
        connection: ChaincodeConnection,
        batch_timeout_s: float = 0.02,
        max_batch: int = 200,
    ) -> None:
        self.channel, self.chaincodes, self.msp, self.peer = channel, chaincodes, msp, peer
        self.connection = connection
        self.batch_timeout_s, self.max_batch = batch_timeout_s, max_batch
        self.address = f"{peer.msp_id} stand-in peer"
        self.state: dict[tuple[str, str], tuple[bytes, Version]] = {}
        self.blocks: list[_Block] = [_Block(0, [])]  # block 0: the channel's config block
        self.statuses: dict[str, tuple[int, int]] = {}  # tx id -> (code, block)
        self.cond = threading.Condition()
        self._queue: list[common_pb2.Envelope] = []
        self._stop = False
        threading.Thread(target=self._order, name="standin-orderer", daemon=True).start()

    # ---- helpers
    def _abort(self, context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
        detail = gateway_pb2.ErrorDetail(address=self.address, msp_id=self.peer.msp_id, message=message)
        context.set_trailing_metadata([("grpc-status-details-bin", _status_details(code, message, [detail]))])
        context.abort(code, message)
        raise AssertionError("grpc's abort raises")

    def _signed_by(
        self, context: grpc.ServicerContext, creator: bytes, message: bytes, signature: bytes, refusal: str
    ) -> None:
        """Refuse the call (PERMISSION_DENIED, ``refusal: why``) unless ``signature`` over ``message``
        is ``creator``'s, a channel member's."""
        try:
            self.msp.verify(creator, message, signature)
        except FabricIdentityError as exc:
            self._abort(context, grpc.StatusCode.PERMISSION_DENIED, f"{refusal}: {exc}")

    def _check_proposal(
        self, signed: proposal_pb2.SignedProposal, context: grpc.ServicerContext
    ) -> ParsedProposal:
        try:
            p = parse_proposal(signed.proposal_bytes)
        except ValueError as exc:
            self._abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        self._signed_by(context, p.creator, signed.proposal_bytes, signed.signature, "access denied")
        if p.channel != self.channel:
            self._abort(context, grpc.StatusCode.NOT_FOUND, f"channel {p.channel!r} not found")
        if p.chaincode not in self.chaincodes and "*" not in self.chaincodes:
            self._abort(
                context,
                grpc.StatusCode.NOT_FOUND,
                f"chaincode {p.chaincode!r} is not defined on this channel",
            )
        return p

    def _scan(self, ns: str, start: str, end: str) -> list[tuple[str, bytes, Version]]:
        """Namespace ``ns``'s keys in ``[start, end)`` (``end`` empty: to the last), in key order."""
        keys = sorted(k for n, k in self.state if n == ns and k >= start and (not end or k < end))
        return [(k, *self.state[(ns, k)]) for k in keys]

    def _simulate(
        self, p: ParsedProposal, signed: proposal_pb2.SignedProposal, context: grpc.ServicerContext
    ) -> tuple[Simulation, Outcome]:
        """Run the chaincode on a simulation of the state; refuse the call when the chaincode server
        is unreachable (UNAVAILABLE) or the chaincode answers an error (ABORTED, its message)."""
        ns = p.chaincode
        sim = Simulation(
            ns, lambda key: self.state.get((ns, key)), lambda start, end: self._scan(ns, start, end)
        )
        try:
            with self.cond:  # a consistent snapshot: no block commits while the chaincode runs
                outcome = self.connection.execute(p.channel, p.tx_id, signed, p.args, sim)
        except ChaincodeShimError as exc:
            self._abort(context, grpc.StatusCode.UNAVAILABLE, str(exc))
        if outcome.response.status >= 400:
            msg = f"chaincode response {outcome.response.status}, {outcome.response.message}"
            self._abort(context, grpc.StatusCode.ABORTED, msg)
        return sim, outcome

    # ---- the Gateway service
    def Evaluate(self, request: gateway_pb2.EvaluateRequest, context: grpc.ServicerContext) -> Any:
        p = self._check_proposal(request.proposed_transaction, context)
        _, outcome = self._simulate(p, request.proposed_transaction, context)
        return gateway_pb2.EvaluateResponse(result=outcome.response)

    def Endorse(self, request: gateway_pb2.EndorseRequest, context: grpc.ServicerContext) -> Any:
        signed = request.proposed_transaction
        p = self._check_proposal(signed, context)
        if request.transaction_id != p.tx_id or request.channel_id != p.channel:
            self._abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                "the request's tx id or channel is not the proposal's",
            )
        sim, outcome = self._simulate(p, signed, context)
        event = outcome.event
        if event is not None:  # the peer names the chaincode and tx on the event, as Fabric's does
            event.chaincode_id, event.tx_id = p.chaincode, p.tx_id
        kv = kv_rwset_pb2.KVRWSet(
            reads=[
                kv_rwset_pb2.KVRead(
                    key=k, version=kv_rwset_pb2.Version(block_num=v[0], tx_num=v[1]) if v else None
                )
                for k, v in sorted(sim.reads.items())
            ],
            range_queries_info=[
                kv_rwset_pb2.RangeQueryInfo(
                    start_key=s,
                    end_key=e,
                    itr_exhausted=True,
                    raw_reads=kv_rwset_pb2.QueryReads(
                        kv_reads=[
                            kv_rwset_pb2.KVRead(
                                key=k, version=kv_rwset_pb2.Version(block_num=v[0], tx_num=v[1])
                            )
                            for k, v in rows
                        ]
                    ),
                )
                for s, e, rows in sim.range_reads
            ],
            writes=[
                kv_rwset_pb2.KVWrite(key=k, is_delete=v is None, value=v or b"")
                for k, v in sorted(sim.writes.items())
            ],
        )
        results = rwset_pb2.TxReadWriteSet(
            data_model=rwset_pb2.TxReadWriteSet.KV,
            ns_rwset=[rwset_pb2.NsReadWriteSet(namespace=p.chaincode, rwset=kv.SerializeToString())],
        )
        action = proposal_pb2.ChaincodeAction(
            results=results.SerializeToString(),
            events=event.SerializeToString() if event is not None else b"",
            response=outcome.response,
            chaincode_id=chaincode_pb2.ChaincodeID(name=p.chaincode),
        )
        prp = proposal_response_pb2.ProposalResponsePayload(
            proposal_hash=proposal_hash(p), extension=action.SerializeToString()
        ).SerializeToString()
        endorser = self.peer.creator
        endorsement = proposal_response_pb2.Endorsement(
            endorser=endorser, signature=self.peer.sign(prp + endorser)
        )
        visible = proposal_pb2.ChaincodeProposalPayload(
            input=proposal_pb2.ChaincodeProposalPayload.FromString(p.payload).input
        )
        cap = transaction_pb2.ChaincodeActionPayload(
            chaincode_proposal_payload=visible.SerializeToString(),
            action=transaction_pb2.ChaincodeEndorsedAction(
                proposal_response_payload=prp, endorsements=[endorsement]
            ),
        )
        tx = transaction_pb2.Transaction(
            actions=[
                transaction_pb2.TransactionAction(header=p.signature_header, payload=cap.SerializeToString())
            ]
        )
        payload = common_pb2.Payload(
            header=common_pb2.Header.FromString(p.header), data=tx.SerializeToString()
        )
        envelope = common_pb2.Envelope(payload=payload.SerializeToString())
        return gateway_pb2.EndorseResponse(prepared_transaction=envelope)

    def Submit(self, request: gateway_pb2.SubmitRequest, context: grpc.ServicerContext) -> Any:
        envelope = request.prepared_transaction
        try:
            parts = transaction_parts(envelope.payload)
        except ValueError as exc:
            self._abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if parts.channel != self.channel or parts.tx_id != request.transaction_id:
            self._abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                "the envelope's channel or tx id is not the request's",
            )
        # the ordering service admits only envelopes signed by a channel writer
        self._signed_by(
            context, parts.creator, envelope.payload, envelope.signature, "the orderer refused the envelope"
        )
        with self.cond:
            self._queue.append(envelope)
            self.cond.notify_all()
        return gateway_pb2.SubmitResponse()

    def CommitStatus(
        self, request: gateway_pb2.SignedCommitStatusRequest, context: grpc.ServicerContext
    ) -> Any:
        req = gateway_pb2.CommitStatusRequest.FromString(request.request)
        self._signed_by(context, req.identity, request.request, request.signature, "access denied")
        deadline = time.monotonic() + (context.time_remaining() or 60.0)
        with self.cond:
            while req.transaction_id not in self.statuses:
                left = deadline - time.monotonic()
                if left <= 0 or not context.is_active():
                    self._abort(
                        context,
                        grpc.StatusCode.DEADLINE_EXCEEDED,
                        "the transaction was not committed in time",
                    )
                self.cond.wait(min(left, 0.5))
            code, block = self.statuses[req.transaction_id]
        return gateway_pb2.CommitStatusResponse(result=code, block_number=block)

    def ChaincodeEvents(
        self, request: gateway_pb2.SignedChaincodeEventsRequest, context: grpc.ServicerContext
    ) -> Iterator[Any]:
        req = gateway_pb2.ChaincodeEventsRequest.FromString(request.request)
        self._signed_by(context, req.identity, request.request, request.signature, "access denied")
        if req.channel_id != self.channel:
            self._abort(context, grpc.StatusCode.NOT_FOUND, f"channel {req.channel_id!r} not found")
        pos = req.start_position
        with self.cond:
            n = (
                pos.specified.number
                if pos.HasField("specified")
                else 0
                if pos.HasField("oldest")
                else len(self.blocks)
            )
        skip_to = req.after_transaction_id
        first = n
        while context.is_active():
            with self.cond:
                while n >= len(self.blocks) and context.is_active() and not self._stop:
                    self.cond.wait(0.5)
                if n >= len(self.blocks):
                    return
                block = self.blocks[n]
            txs = block.txs
            if n == first and skip_to and any(t.tx_id == skip_to for t in txs):
                txs = txs[[t.tx_id for t in txs].index(skip_to) + 1 :]
            events = [
                e for t in txs if t.code == V.VALID for e in t.events if e.chaincode_id == req.chaincode_id
            ]
            if events:
                yield gateway_pb2.ChaincodeEventsResponse(events=events, block_number=n)
            n += 1

    # ---- ordering and commit
    def _order(self) -> None:
        while True:
            with self.cond:
                while not self._queue and not self._stop:
                    self.cond.wait(0.5)
                if self._stop:
                    return
            time.sleep(self.batch_timeout_s)  # the batch timeout: later envelopes join this block
            with self.cond:
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                self._commit(batch)
                self.cond.notify_all()

    def _validate(self, envelope: common_pb2.Envelope, seen: set[str]) -> tuple[int, Any]:
        try:
            parts = transaction_parts(envelope.payload)
        except ValueError:
            return V.BAD_PAYLOAD, None
        if parts.tx_id in self.statuses or parts.tx_id in seen:
            return V.DUPLICATE_TXID, parts
        try:
            self.msp.verify(parts.creator, envelope.payload, envelope.signature)
        except FabricIdentityError:
            return V.BAD_CREATOR_SIGNATURE, parts
        endorsed = False
        for e in parts.endorsements:
            try:
                self.msp.verify(e.endorser, parts.proposal_response_payload + e.endorser, e.signature)
                endorsed = endorsed or e.endorser == self.peer.creator
            except FabricIdentityError:
                return V.ENDORSEMENT_POLICY_FAILURE, parts
        if not endorsed:
            return V.ENDORSEMENT_POLICY_FAILURE, parts
        results = rwset_pb2.TxReadWriteSet.FromString(parts.results)
        for ns in results.ns_rwset:
            kv = kv_rwset_pb2.KVRWSet.FromString(ns.rwset)
            for r in kv.reads:
                cur = self.state.get((ns.namespace, r.key))
                want = (r.version.block_num, r.version.tx_num) if r.HasField("version") else None
                if (cur[1] if cur else None) != want:
                    return V.MVCC_READ_CONFLICT, parts
            for q in kv.range_queries_info:
                now = [(k, v) for k, _, v in self._scan(ns.namespace, q.start_key, q.end_key)]
                then = [(r.key, (r.version.block_num, r.version.tx_num)) for r in q.raw_reads.kv_reads]
                if now != then:
                    return V.PHANTOM_READ_CONFLICT, parts
        return V.VALID, parts

    def _commit(self, batch: list[common_pb2.Envelope]) -> None:
        number = len(self.blocks)
        txs: list[_Tx] = []
        seen: set[str] = set()
        for i, envelope in enumerate(batch):
            code, parts = self._validate(envelope, seen)
            tx_id = parts.tx_id if parts else f"malformed-{number}-{i}"
            seen.add(tx_id)
            events = [parts.event] if code == V.VALID and parts.event is not None else []
            if code == V.VALID:
                for ns in rwset_pb2.TxReadWriteSet.FromString(parts.results).ns_rwset:
                    for w in kv_rwset_pb2.KVRWSet.FromString(ns.rwset).writes:
                        if w.is_delete:
                            self.state.pop((ns.namespace, w.key), None)
                        else:
                            self.state[(ns.namespace, w.key)] = (bytes(w.value), (number, i))
            txs.append(_Tx(tx_id, code, events))
            self.statuses.setdefault(tx_id, (code, number))
        self.blocks.append(_Block(number, txs))

    def stop(self) -> None:
        with self.cond:
            self._stop = True
            self.cond.notify_all()


def serve(config: dict[str, Any]) -> tuple[grpc.Server, StandInPeer]:
    """Start the stand-in from ``config`` (see ``scenarios/fabricnet.py``): it connects to the
    chaincode server, then serves the Gateway on ``listen``."""
    peer = FabricIdentity.load(config["peer"]["msp_id"], config["peer"]["cert"], config["peer"]["key"])
    msp = MspVerifier({m: Path(p).read_bytes() for m, p in config["msps"].items()})
    connection = ChaincodeConnection(
        config["chaincode_address"], timeout_s=float(config.get("timeout_s", 30))
    )
    servicer = StandInPeer(
        channel=config["channel"],
        chaincodes=list(config["chaincodes"]),
        msp=msp,
        peer=peer,
        connection=connection,
        batch_timeout_s=float(config.get("batch_timeout_s", 0.02)),
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=32),
        options=[("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)],
    )
    gateway_pb2_grpc.add_GatewayServicer_to_server(servicer, server)
    tls = config.get("tls")
    if tls:  # the gateway's TLS server certificate and key (clients trust its TLS CA)
        creds = grpc.ssl_server_credentials([(Path(tls["key"]).read_bytes(), Path(tls["cert"]).read_bytes())])
        port = server.add_secure_port(config["listen"], creds)
    else:
        port = server.add_insecure_port(config["listen"])
    if port == 0:
        raise OSError(f"cannot listen on {config['listen']}")
    server.start()
    return server, servicer


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m confide.ledger.fabric.standin CONFIG.json", file=sys.stderr)
        return 2
    try:
        server, _ = serve(json.loads(Path(args[0]).read_text()))
    except (OSError, ValueError, KeyError, ChaincodeShimError, FabricIdentityError) as exc:
        print(f"error: the Fabric stand-in did not start: {exc}", file=sys.stderr)
        return 1
    print("ready", flush=True)
    server.wait_for_termination()
    return 0


if __name__ == "__main__":
    sys.exit(main())
