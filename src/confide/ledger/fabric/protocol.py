"""Fabric's transaction messages, built and read as peers and the Gateway do (fabric-protos).

A chaincode call is a ``Proposal`` (channel header with the tx id and time, signature header with the
creator and a nonce, the chaincode invocation), signed into a ``SignedProposal``. An endorsing peer
answers with a ``ProposalResponsePayload`` (hash of the proposal, the chaincode's result, read/write
set and event) and its endorsement; the Gateway wraps them into the ``Envelope`` the client signs and
submits for ordering. The tx id is ``sha256(nonce || creator)`` in hex.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from fabric_protos.common import common_pb2
from fabric_protos.peer import (
    chaincode_event_pb2,
    chaincode_pb2,
    proposal_pb2,
    proposal_response_pb2,
    transaction_pb2,
)
from google.protobuf import timestamp_pb2

__all__ = [
    "ParsedProposal",
    "new_proposal",
    "parse_proposal",
    "proposal_hash",
    "transaction_parts",
    "tx_id_of",
]


def tx_id_of(nonce: bytes, creator: bytes) -> str:
    return hashlib.sha256(nonce + creator).hexdigest()


def _timestamp(time_ms: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=time_ms // 1000, nanos=(time_ms % 1000) * 1_000_000)


def new_proposal(
    creator: bytes, channel: str, chaincode: str, args: list[bytes], time_ms: int
) -> tuple[str, bytes]:
    """(tx id, proposal bytes) calling ``chaincode`` with ``args`` (function name first)."""
    nonce = os.urandom(24)
    tx_id = tx_id_of(nonce, creator)
    cc_id = chaincode_pb2.ChaincodeID(name=chaincode)
    channel_header = common_pb2.ChannelHeader(
        type=common_pb2.ENDORSER_TRANSACTION,
        channel_id=channel,
        tx_id=tx_id,
        timestamp=_timestamp(time_ms),
        extension=proposal_pb2.ChaincodeHeaderExtension(chaincode_id=cc_id).SerializeToString(),
    )
    header = common_pb2.Header(
        channel_header=channel_header.SerializeToString(),
        signature_header=common_pb2.SignatureHeader(creator=creator, nonce=nonce).SerializeToString(),
    )
    spec = chaincode_pb2.ChaincodeSpec(
        type=chaincode_pb2.ChaincodeSpec.NODE,
        chaincode_id=cc_id,
        input=chaincode_pb2.ChaincodeInput(args=args),
    )
    payload = proposal_pb2.ChaincodeProposalPayload(
        input=chaincode_pb2.ChaincodeInvocationSpec(chaincode_spec=spec).SerializeToString()
    )
    proposal = proposal_pb2.Proposal(header=header.SerializeToString(), payload=payload.SerializeToString())
    return tx_id, proposal.SerializeToString()


@dataclass(frozen=True)
class ParsedProposal:
    tx_id: str
    channel: str
    chaincode: str
    creator: bytes
    nonce: bytes
    time_ms: int
    args: list[bytes]
    header: bytes  # the proposal's Header bytes (they head the transaction's payload)
    signature_header: bytes
    payload: bytes  # the ChaincodeProposalPayload bytes


def parse_proposal(proposal_bytes: bytes) -> ParsedProposal:
    """The fields of an endorser proposal; ValueError when it is not one."""
    try:
        proposal = proposal_pb2.Proposal.FromString(proposal_bytes)
        header = common_pb2.Header.FromString(proposal.header)
        ch = common_pb2.ChannelHeader.FromString(header.channel_header)
        sh = common_pb2.SignatureHeader.FromString(header.signature_header)
        ext = proposal_pb2.ChaincodeHeaderExtension.FromString(ch.extension)
        cpp = proposal_pb2.ChaincodeProposalPayload.FromString(proposal.payload)
        spec = chaincode_pb2.ChaincodeInvocationSpec.FromString(cpp.input).chaincode_spec
    except Exception as exc:
        raise ValueError(f"not a Fabric proposal: {exc}") from exc
    if ch.type != common_pb2.ENDORSER_TRANSACTION:
        raise ValueError(f"not an endorser transaction (header type {ch.type})")
    if ch.tx_id != tx_id_of(sh.nonce, sh.creator):
        raise ValueError("the tx id is not sha256(nonce || creator)")
    name = spec.chaincode_id.name or ext.chaincode_id.name
    time_ms = ch.timestamp.seconds * 1000 + ch.timestamp.nanos // 1_000_000
    return ParsedProposal(
        tx_id=ch.tx_id,
        channel=ch.channel_id,
        chaincode=name,
        creator=sh.creator,
        nonce=sh.nonce,
        time_ms=time_ms,
        args=list(spec.input.args),
        header=proposal.header,
        signature_header=header.signature_header,
        payload=proposal.payload,
    )


def proposal_hash(p: ParsedProposal) -> bytes:
    """What a ProposalResponsePayload binds: the hash of the channel header, signature header and
    the proposal payload without its transient map (Fabric's GetProposalHash1)."""
    cpp = proposal_pb2.ChaincodeProposalPayload.FromString(p.payload)
    visible = proposal_pb2.ChaincodeProposalPayload(input=cpp.input).SerializeToString()
    header = common_pb2.Header.FromString(p.header)
    return hashlib.sha256(header.channel_header + header.signature_header + visible).digest()


@dataclass(frozen=True)
class TransactionParts:
    tx_id: str
    channel: str
    creator: bytes
    response: proposal_response_pb2.Response
    results: bytes  # the TxReadWriteSet bytes
    event: chaincode_event_pb2.ChaincodeEvent | None
    chaincode: str
    proposal_response_payload: bytes
    endorsements: list[proposal_response_pb2.Endorsement]


def transaction_parts(payload_bytes: bytes) -> TransactionParts:
    """The parts of an endorser transaction's envelope payload; ValueError when malformed."""
    try:
        payload = common_pb2.Payload.FromString(payload_bytes)
        ch = common_pb2.ChannelHeader.FromString(payload.header.channel_header)
        sh = common_pb2.SignatureHeader.FromString(payload.header.signature_header)
        tx = transaction_pb2.Transaction.FromString(payload.data)
        if len(tx.actions) != 1:
            raise ValueError(f"{len(tx.actions)} actions (one expected)")
        cap = transaction_pb2.ChaincodeActionPayload.FromString(tx.actions[0].payload)
        prp = proposal_response_pb2.ProposalResponsePayload.FromString(cap.action.proposal_response_payload)
        action = proposal_pb2.ChaincodeAction.FromString(prp.extension)
        event = chaincode_event_pb2.ChaincodeEvent.FromString(action.events) if action.events else None
    except ValueError:
        raise
    except Exception as exc:
        raise ValueError(f"not an endorser transaction: {exc}") from exc
    if ch.type != common_pb2.ENDORSER_TRANSACTION:
        raise ValueError(f"not an endorser transaction (header type {ch.type})")
    return TransactionParts(
        tx_id=ch.tx_id,
        channel=ch.channel_id,
        creator=sh.creator,
        response=action.response,
        results=action.results,
        event=event,
        chaincode=action.chaincode_id.name,
        proposal_response_payload=cap.action.proposal_response_payload,
        endorsements=list(cap.action.endorsements),
    )
