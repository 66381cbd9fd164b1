"""Audit trail: who did what, in which block, with which outcome.

Built from a node's own verified store: each tx's signer is resolved to the
member (name, org, roles) recorded on the ledger.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from .embedded.store import DBState
from .store import ChainStore

__all__ = ["audit_trail", "describe_tx", "fmt_time"]


def fmt_time(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def describe_tx(tx_type: str, payload: dict[str, Any]) -> str:
    """One readable line for a tx payload."""
    p = payload
    short = {k: v for k, v in p.items() if isinstance(v, str) and len(v) == 64}
    for k, v in short.items():
        p = {**p, k: v[:12]}
    match tx_type:
        case "unit.create":
            return f"unit {p['unit']} ({p['name']})"
        case "member.add":
            return f"{p['name']} as {', '.join(p['roles'])}" + (f" of {p['unit']}" if p.get("unit") else "")
        case "dataset.register":
            return f"{p['unit']}/{p['name']} ({p['kind']}, {p['row_count']} rows)"
        case "application.submit":
            return f"{p['dataset']} for {', '.join(p['engines'])}: {p['purpose']}"
        case "application.approve" | "application.reject":
            return f"application {p['application']} at level {p['level']}"
        case _:
            return json.dumps(p, ensure_ascii=False, sort_keys=True)[:100]


def audit_trail(db: ChainStore) -> list[dict[str, Any]]:
    state = DBState(db)
    members: dict[str, dict[str, Any]] = {}
    times: dict[int, int] = {}
    out = []
    for row in db.iter_txs():
        h = row["height"]
        if h not in times:
            block = db.get_block(h)
            assert block is not None
            times[h] = block.header.time
        signer = row["signer"]
        if signer not in members:
            members[signer] = state.get(f"member/{signer}") or {"name": "?", "org": "?"}
        m = members[signer]
        body = json.loads(db.find_tx(row["tx_id"])["body"])  # type: ignore[index]
        out.append(
            {
                "height": h,
                "time": fmt_time(times[h]),
                "org": m["org"],
                "who": m["name"],
                "type": row["type"],
                "what": describe_tx(row["type"], body["payload"]),
                "code": row["code"],
                "tx_id": row["tx_id"],
            }
        )
    return out
