"""A Fabric Gateway client on the official fabric-protos (the Gateway service of Fabric ≥ 2.4).

What the official Go/Node/Java Gateway SDKs do, in Python:

* **evaluate**: a signed proposal to ``Gateway.Evaluate``; the chaincode's answer, nothing ordered.
* **submit**: ``Endorse`` (the gateway peer collects endorsements and returns the prepared
  envelope), the client checks it is the transaction it proposed and signs it, ``Submit`` (to the
  ordering service), then a signed ``CommitStatus`` request waits until a block holds it and says
  whether it is valid (an MVCC conflict, for one, is a ``FabricCommitError`` with its code).
* **chaincode events**: a signed ``ChaincodeEvents`` request streams the chaincode's events block by
  block from a block number, optionally after a transaction in it (resume after a restart).

Errors from the Gateway (gRPC status and its ``ErrorDetail`` list: which peer said what) are
``FabricError`` with the peers' messages, so a refused chaincode call reads as the chaincode wrote it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import grpc
from fabric_protos.gateway import gateway_pb2, gateway_pb2_grpc
from fabric_protos.orderer import ab_pb2
from fabric_protos.peer import proposal_pb2, transaction_pb2

from ..errors import LedgerError
from .msp import FabricIdentity
from .protocol import new_proposal, transaction_parts

__all__ = ["ChaincodeEvents", "FabricCommitError", "FabricError", "FabricGateway", "Submitted"]


class FabricError(LedgerError):
    """The Gateway (or a peer behind it) refused or could not be reached; the message says which."""


class FabricCommitError(FabricError):
    """The transaction was ordered but a block marks it invalid (``code``: its TxValidationCode)."""

    def __init__(self, tx_id: str, code: int) -> None:
        self.tx_id, self.code = tx_id, code
        self.code_name = transaction_pb2.TxValidationCode.Name(code)
        super().__init__(f"Fabric marked transaction {tx_id[:16]}… invalid: {self.code_name}")


@dataclass(frozen=True)
class Submitted:
    tx_id: str
    result: bytes  # the chaincode's answer
    block_number: int


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    out = shift = 0
    while True:
        b = buf[i]
        out |= (b & 0x7F) << shift
        i += 1
        if not b & 0x80:
            return out, i
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, bytes | int]]:
    """The fields of a protobuf message (length-delimited as bytes, varints as ints)."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        if key & 7 == 0:
            v, i = _varint(buf, i)
            yield key >> 3, v
        elif key & 7 == 2:
            n, i = _varint(buf, i)
            yield key >> 3, buf[i : i + n]
            i += n
        else:
            return  # not in google.rpc.Status


def _details(err: grpc.RpcError) -> list[str]:
    """The peers' messages in the Gateway's rich error (google.rpc.Status → gateway.ErrorDetail)."""
    out: list[str] = []
    for key, value in getattr(err, "trailing_metadata", lambda: ())() or ():
        if key != "grpc-status-details-bin" or not isinstance(value, bytes):
            continue
        try:
            for num, any_bytes in _fields(value):
                if num != 3 or not isinstance(any_bytes, bytes):
                    continue
                fields = dict(_fields(any_bytes))
                raw = fields.get(2)
                kind = fields.get(1, b"")
                if (
                    isinstance(raw, bytes)
                    and isinstance(kind, bytes)
                    and kind.endswith(b"/gateway.ErrorDetail")
                ):
                    d = gateway_pb2.ErrorDetail.FromString(raw)
                    out.append(f"{d.msp_id or d.address}: {d.message}")
        except (IndexError, ValueError):
            continue
    return out


def _error(what: str, err: grpc.RpcError) -> FabricError:
    code = err.code() if hasattr(err, "code") else None
    msg = err.details() if hasattr(err, "details") else str(err)
    extra = [d for d in _details(err) if not d.endswith(": " + str(msg))]
    text = f"Fabric gateway {what} failed ({code.name if code else '?'}): {msg}"
    if extra:
        text += " — " + "; ".join(extra)
    if code == grpc.StatusCode.UNAVAILABLE:
        text += " (is the gateway peer running and reachable?)"
    return FabricError(text)


def _arg(a: str | bytes) -> bytes:
    return a.encode("utf-8") if isinstance(a, str) else a


def now_ms() -> int:
    return int(time.time() * 1000)


class FabricGateway:
    """One client identity talking to one gateway peer about one chaincode on one channel.
    ``tls_root_pem``: the peer's TLS CA (None: plaintext, for a loopback stand-in only).
    ``clock``: the time put in each proposal's channel header (ms)."""

    def __init__(
        self,
        endpoint: str,
        identity: FabricIdentity,
        channel: str,
        chaincode: str,
        *,
        tls_root_pem: bytes | None = None,
        timeout_s: float = 30.0,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.endpoint, self.identity, self.channel, self.chaincode = endpoint, identity, channel, chaincode
        self.timeout_s, self.clock = timeout_s, clock
        opts = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]
        if tls_root_pem is None:
            self._grpc = grpc.insecure_channel(endpoint, options=opts)
        else:
            creds = grpc.ssl_channel_credentials(root_certificates=tls_root_pem)
            self._grpc = grpc.secure_channel(endpoint, creds, options=opts)
        self._stub = gateway_pb2_grpc.GatewayStub(self._grpc)

    def _proposal(self, fn: str, args: tuple[str | bytes, ...]) -> tuple[str, proposal_pb2.SignedProposal]:
        tx_id, proposal = new_proposal(
            self.identity.creator, self.channel, self.chaincode, [_arg(fn), *map(_arg, args)], self.clock()
        )
        return tx_id, proposal_pb2.SignedProposal(
            proposal_bytes=proposal, signature=self.identity.sign(proposal)
        )

    def evaluate(self, fn: str, *args: str | bytes) -> bytes:
        tx_id, signed = self._proposal(fn, args)
        req = gateway_pb2.EvaluateRequest(
            transaction_id=tx_id, channel_id=self.channel, proposed_transaction=signed
        )
        try:
            resp = self._stub.Evaluate(req, timeout=self.timeout_s)
        except grpc.RpcError as err:
            raise _error(f"evaluate {fn}", err) from None
        if resp.result.status >= 400:
            raise FabricError(f"chaincode {self.chaincode} {fn}: {resp.result.message}")
        return bytes(resp.result.payload)

    def submit(self, fn: str, *args: str | bytes) -> Submitted:
        tx_id, signed = self._proposal(fn, args)
        try:
            endorsed = self._stub.Endorse(
                gateway_pb2.EndorseRequest(
                    transaction_id=tx_id, channel_id=self.channel, proposed_transaction=signed
                ),
                timeout=self.timeout_s,
            )
        except grpc.RpcError as err:
            raise _error(f"endorse {fn}", err) from None
        envelope = endorsed.prepared_transaction
        try:
            parts = transaction_parts(envelope.payload)
        except ValueError as exc:
            raise FabricError(f"the gateway returned a malformed transaction: {exc}") from None
        if parts.tx_id != tx_id or parts.creator != self.identity.creator or parts.channel != self.channel:
            raise FabricError(
                "the gateway returned another transaction than the one proposed (refused to sign)"
            )
        if parts.response.status >= 400:
            raise FabricError(f"chaincode {self.chaincode} {fn}: {parts.response.message}")
        envelope.signature = self.identity.sign(envelope.payload)
        try:
            self._stub.Submit(
                gateway_pb2.SubmitRequest(
                    transaction_id=tx_id, channel_id=self.channel, prepared_transaction=envelope
                ),
                timeout=self.timeout_s,
            )
        except grpc.RpcError as err:
            raise _error(f"submit {fn}", err) from None
        status = self.commit_status(tx_id)
        if status.result != transaction_pb2.VALID:
            raise FabricCommitError(tx_id, status.result)
        return Submitted(tx_id, bytes(parts.response.payload), int(status.block_number))

    def commit_status(self, tx_id: str) -> gateway_pb2.CommitStatusResponse:
        """Wait until a block holds ``tx_id``; its validation code and block number."""
        request = gateway_pb2.CommitStatusRequest(
            transaction_id=tx_id, channel_id=self.channel, identity=self.identity.creator
        ).SerializeToString()
        signed = gateway_pb2.SignedCommitStatusRequest(request=request, signature=self.identity.sign(request))
        try:
            return self._stub.CommitStatus(signed, timeout=self.timeout_s)
        except grpc.RpcError as err:
            raise _error("commit status", err) from None

    def events(self, start_block: int, after_tx_id: str = "") -> ChaincodeEvents:
        """The chaincode's events from block ``start_block`` (after ``after_tx_id`` in it), then live."""
        position = ab_pb2.SeekPosition(specified=ab_pb2.SeekSpecified(number=max(start_block, 0)))
        request = gateway_pb2.ChaincodeEventsRequest(
            channel_id=self.channel,
            chaincode_id=self.chaincode,
            identity=self.identity.creator,
            start_position=position,
            after_transaction_id=after_tx_id,
        ).SerializeToString()
        signed = gateway_pb2.SignedChaincodeEventsRequest(
            request=request, signature=self.identity.sign(request)
        )
        return ChaincodeEvents(self._stub.ChaincodeEvents(signed))

    def close(self) -> None:
        self._grpc.close()


class ChaincodeEvents:
    """A live chaincode-event stream: iterate ``ChaincodeEventsResponse``s; ``cancel`` ends it."""

    def __init__(self, call: grpc.Call) -> None:
        self._call = call

    def __iter__(self) -> Iterator[gateway_pb2.ChaincodeEventsResponse]:
        try:
            yield from self._call  # type: ignore[misc]
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.CANCELLED:
                raise _error("chaincode events", err) from None

    def cancel(self) -> None:
        self._call.cancel()
