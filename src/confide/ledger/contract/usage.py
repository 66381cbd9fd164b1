"""Usage records: each call of an API-type data service, on the ledger.

Signed by the *owner's node* (role ``node`` of the dataset's org), after it
checked the grant and before it hands the response over. The record holds
digests of the request and of the (column-projected) response, never their
content, and consumes one use of the grant like a run does.
"""

from __future__ import annotations

from ..codes import Code, Reject
from .ctx import Ctx
from .grants import consume_use, require_live
from .models import UsageRecord

__all__ = ["usage_record"]


def usage_record(ctx: Ctx, p: UsageRecord) -> None:
    ds = ctx.dataset(p.dataset)
    ctx.require(ctx.has_role("node") and ctx.org == ds["org"], "only the dataset owner's node records usage")
    grant = ctx.load(f"app/{p.grant}", "grant")
    if grant["dataset"] != p.dataset:
        raise Reject(Code.OUT_OF_SCOPE, "the grant is for another dataset")
    require_live(grant, ctx.now)
    if "api" not in grant["engines"]:
        raise Reject(Code.OUT_OF_SCOPE, "the grant does not allow direct API calls (engine 'api')")
    consume_use(ctx, grant)
    ctx.state.put(
        f"usage/{ctx.tx.tx_id}",
        {
            "id": ctx.tx.tx_id,
            "grant": p.grant,
            "dataset": p.dataset,
            "requester": grant["applicant"],
            "request_digest": p.request_digest,
            "response_digest": p.response_digest,
            "at": ctx.now,
        },
    )
    ctx.emit("usage.recorded", grant=p.grant, dataset=p.dataset, uses=grant["uses"])
