"""A data owner's node sends one input of a tee run to the enclave the run names, or refuses.

Checked on this node's own ledger view, before the first byte leaves, in this order:

1. the caller is the node key of the org the attestation names as host;
2. the dataset is this org's and an input of the run's task; the run is ``running`` and was started
   at most :data:`MAX_RUN_AGE_MS` ago;
3. the quote verifies (``verify.verify_run_attestation``: genesis root, trusted runtime + the task
   code on the ledger, REPORT_DATA binding, a recent block of this chain);
4. the grant is live for the task's requester, engine ``tee`` and the task's columns
   (``enforcement.authorize_use``, logged either way);
5. this (run, dataset) was never sent before (claimed in the node's database first).

Then only the task's columns of the dataset version the run names are read through the connector and
encrypted to the enclave's channel key (``engines.tee.channel``), streamed as ``u32 length || frame``.
The input digest over the frames sent is kept, so the owner can approve the release knowing the
enclave received exactly this.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from ...engines.tee.channel import ChannelSender, TransferContext
from ...engines.tee.wire import InputDigest
from ..context import NodeContext
from ..enforcement import authorize_task_input
from ..sources import read_version
from .verify import TeeRefused, verify_run_attestation

__all__ = ["MAX_RUN_AGE_MS", "open_transfer"]

MAX_RUN_AGE_MS = 30 * 60 * 1000
log = logging.getLogger("confide.node.tee")


def _input_of(task: dict[str, Any], dataset: str) -> tuple[int, dict[str, Any]]:
    for i, inp in enumerate(task["inputs"]):
        if inp["dataset"] == dataset:
            return i, inp
    raise TeeRefused("NOT_AN_INPUT", f"{dataset} is not an input of task {task['id'][:16]}")


def open_transfer(
    ctx: NodeContext, *, run_id: str, dataset: str, caller_key_id: str
) -> tuple[Iterator[bytes], str]:
    """All checks, then the lazy stream of length-prefixed frames and this node's sender key id."""
    run = ctx.query_or_none(f"run/{run_id}")
    if run is None:
        raise TeeRefused("UNKNOWN_RUN", f"run {run_id[:16]} is not on this node's ledger (yet)", 404)
    task = ctx.query(f"task/{run['task']}")
    att = run.get("attestation") or {}
    caller = ctx.member(caller_key_id) or {}
    if "node" not in caller.get("roles", ()) or caller.get("org") != att.get("host_org"):
        raise TeeRefused("NOT_THE_HOST", "only the node of the org hosting the run's enclave asks for inputs")
    ds = ctx.query_or_none(f"dataset/{dataset}")
    if ds is None or ds["org"] != ctx.config.org:
        raise TeeRefused("WRONG_ORG", f"this node sends datasets of org {ctx.config.org!r} only")
    index, inp = _input_of(task, dataset)
    if run["status"] != "running":
        raise TeeRefused("RUN_NOT_RUNNING", f"run {run_id[:16]} is {run['status']}", 409)
    if ctx.now() - int(run["started_at"]) > MAX_RUN_AGE_MS:
        raise TeeRefused("RUN_TOO_OLD", "the run started too long ago; start a new run", 409)
    verified = verify_run_attestation(ctx, task, run)
    authorize_task_input(ctx, task, inp, "tee")
    batches = read_version(ctx, dataset, run["input_digests"][index], list(inp["columns"]))
    if not ctx.local.claim_transfer(run_id, dataset, verified.quote_digest.hex()):
        raise TeeRefused(
            "ALREADY_SENT", f"{dataset} was already sent for run {run_id[:16]}; start a new run", 409
        )
    context = TransferContext(verified.quote_digest, task["id"], dataset, ctx.identity.key_id)
    sender = ChannelSender(bytes.fromhex(att["channel_pub"]), context)
    return _stream(ctx, run_id, dataset, sender, batches, inp["columns"]), ctx.identity.key_id


def _stream(
    ctx: NodeContext,
    run_id: str,
    dataset: str,
    sender: ChannelSender,
    batches: Iterator[pa.RecordBatch],
    columns: list[str],
) -> Iterator[bytes]:
    digest, frames, status = InputDigest(), 0, "aborted"
    try:
        first = next(batches, None)
        schema = first.schema if first is not None else pa.schema([(c, pa.string()) for c in columns])
        source = itertools.chain([first], batches) if first is not None else iter(())
        for frame in sender.send_batches(source, schema):
            digest.update(frame)
            frames += 1
            yield len(frame).to_bytes(4, "big") + frame
        status = "sent"
    finally:
        ctx.local.finish_transfer(
            run_id, dataset, status, digest.hexdigest() if status == "sent" else None, frames
        )
        log.info("tee input %s for run %s: %s, %d frames", dataset, run_id[:16], status, frames)
