"""Block explorer and consortium view for the web console: read-only, over this node's own replica.

    GET /v1/blocks?before=&limit=   headers, newest first
    GET /v1/blocks/{height}         header, txs, and the block re-verified now from the store
    GET /v1/txs/{tx_id}             one tx with its block and decoded payload
    GET /v1/consortium/nodes        every org's node: height, head hash, state root; same state?

All need a signed request from an active member key (``Me``). The block and tx reads take no
``ctx.lock``: a block at or below the replica's height is committed and never rewritten, and a
member's key never changes, so the follower keeps applying while a large block is re-verified.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Query

from ...ledger.audit import describe_tx, fmt_time
from ...ledger.block import Block
from ...ledger.codes import Code
from ...ledger.tx import SignedTx, decode_tx
from ..block_check import checks_json, verify_stored_block
from ..context import NodeContext
from ..peer_health import consortium_nodes
from .deps import Ctx, Me
from .errors import ApiError

router = APIRouter(prefix="/v1")

_UNKNOWN = {"name": "?", "org": "?"}


def _header_view(ctx: NodeContext, block: Block, height: int) -> dict[str, Any]:
    """The header as the console shows it (a header that no longer parses shows only its height)."""
    out: dict[str, Any] = {"height": height, "hash": block.block_hash(ctx.replica.suite)}
    try:
        h = block.header
    except (ValueError, TypeError):
        return (
            out
            | dict.fromkeys(("prev_hash", "time", "time_text", "orderer", "tx_root"))
            | {"tx_count": len(block.txs)}
        )
    return {
        **out,
        "prev_hash": h.prev_hash,
        "time": h.time,
        "time_text": fmt_time(h.time),
        "tx_count": h.tx_count,
        "orderer": h.orderer,
        "tx_root": h.tx_root,
        # a block derived from an outside log (evm, etcd, fabric, chainmaker) says where it comes from
        **({"anchor": h.anchor} if h.anchor else {}),
    }


def _tx_view(
    ctx: NodeContext, row: dict[str, Any], members: dict[str, dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """One stored tx row, its signer resolved to the member on the ledger, its payload summarized;
    and the decoded payload (None if the stored body does not parse)."""
    signer = str(row["signer"])
    if signer not in members:
        members[signer] = ctx.state.get(f"member/{signer}") or _UNKNOWN
    m = members[signer]
    payload: dict[str, Any] | None = None
    created_at: int | None = None
    try:
        tx = decode_tx(SignedTx(bytes(row["body"]), bytes(row["sig"])), ctx.replica.suite)
        payload, created_at = tx.payload, tx.created_at
        summary = _summary(tx.type, payload)
    except ValueError as exc:
        summary = f"(body does not parse: {exc})"
    code = int(row["code"])
    view = {
        "tx_id": row["tx_id"],
        "index": row["idx"],
        "type": row["type"],
        "signer": signer,
        "signer_name": m.get("name", "?"),
        "signer_org": m.get("org", "?"),
        "code": code,
        "code_name": _code_name(code),
        "reason": row["reason"],
        "summary": summary,
        "created_at": created_at,
    }
    return view, payload


def _code_name(code: int) -> str:
    try:
        return Code(code).name
    except ValueError:
        return "?"


def _summary(tx_type: str, payload: dict[str, Any]) -> str:
    try:
        return describe_tx(tx_type, payload)
    except (KeyError, TypeError, AttributeError):  # a payload describe_tx does not expect
        return json.dumps(payload, ensure_ascii=False, sort_keys=True)[:100]


def _block_or_404(ctx: NodeContext, height: int) -> Block:
    head = ctx.replica.height
    block = ctx.store.get_block(height) if 0 <= height <= head else None
    if block is None:
        raise ApiError(404, "NOT_FOUND", f"no block at height {height}; the head is {head}")
    return block


@router.get("/blocks")
def blocks(
    ctx: Ctx,
    me: Me,
    before: int | None = Query(None, ge=0, description="only blocks below this height (default: from head)"),
    limit: int = Query(20, ge=1, le=100),
) -> dict[str, Any]:
    """Block headers, newest first; page on with ``before=next_before``."""
    head = ctx.replica.height
    top = head if before is None else min(before - 1, head)
    out = []
    for h in range(top, max(top - limit, -1), -1):
        block = ctx.store.get_block(h)
        if block is not None:
            out.append(_header_view(ctx, block, h))
    lowest = out[-1]["height"] if out else 0
    return {"head": head, "blocks": out, "next_before": lowest if lowest > 0 else None}


@router.get("/blocks/{height}")
def block(height: int, ctx: Ctx, me: Me) -> dict[str, Any]:
    """One block: header, txs, and ``verification`` re-run now on this node's stored copy."""
    blk = _block_or_404(ctx, height)
    members: dict[str, dict[str, Any]] = {}
    txs = [_tx_view(ctx, row, members)[0] for row in ctx.store.txs_in_block(height)]
    checks = verify_stored_block(ctx.replica, height)
    assert checks is not None
    return {**_header_view(ctx, blk, height), "txs": txs, "verification": checks_json(checks)}


@router.get("/txs/{tx_id}")
def tx(tx_id: str, ctx: Ctx, me: Me) -> dict[str, Any]:
    """One tx: its block (height, hash, time), the tx fields of ``/v1/blocks/{height}``, payload, events."""
    row = ctx.store.find_tx(tx_id)
    if row is None:
        raise ApiError(404, "NOT_FOUND", f"tx {tx_id} is not on the chain this node holds")
    blk = _block_or_404(ctx, int(row["height"]))
    view, payload = _tx_view(ctx, row, {})
    header = _header_view(ctx, blk, int(row["height"]))
    return {
        **view,
        "height": header["height"],
        "block_hash": header["hash"],
        "time": header["time"],
        "time_text": header["time_text"],
        "payload": payload,
        "events": row["events"],
    }


@router.get("/consortium/nodes")
def nodes(ctx: Ctx, me: Me) -> dict[str, Any]:
    """This node's view and every peer's ``/v1/health`` (3 s timeout); ``same_state`` compares them."""
    return consortium_nodes(ctx)
