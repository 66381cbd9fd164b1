"""The platform contract: a deterministic state machine over signed txs.

``execute`` runs one signed tx against a block-level overlay: decode the body,
the envelope checks (chain id, replay, created_at window, known signer, valid
signature), the payload schema, then the handler. A refusal returns a code and
reason and leaves state untouched. ``check`` is ``execute`` on a scratch
overlay. No wall clock (only block time), no randomness, no floats, canonical
encoding only: same ordered txs, same state, on every node.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from pydantic import BaseModel, ValidationError

from ...crypto import InvalidSignature, PublicKey
from ..codes import Code, Reject, Result
from ..genesis import Genesis
from ..tx import TX_DOMAIN, SignedTx, Tx, decode_tx
from . import catalog, fl, grants, members, tasks, usage
from . import models as m
from .ctx import BlockInfo, Ctx
from .queries import run_query
from .state import Overlay, StateView

__all__ = ["TX_TYPES", "Contract"]

Handler = Callable[[Ctx, Any], None]


def _handlers(contract: Contract) -> dict[str, tuple[type[BaseModel], Handler]]:
    return {
        "unit.create": (m.UnitCreate, members.unit_create),
        "member.add": (m.MemberAdd, partial(members.member_add, suite=contract.suite)),
        "member.remove": (m.MemberRemove, members.member_remove),
        "dataset.register": (m.DatasetRegister, catalog.dataset_register),
        "dataset.version": (m.DatasetVersion, catalog.dataset_version),
        "dataset.update": (m.DatasetUpdate, catalog.dataset_update),
        "application.submit": (m.ApplicationSubmit, grants.application_submit),
        "application.approve": (m.ApplicationDecide, grants.application_approve),
        "application.reject": (m.ApplicationDecide, grants.application_reject),
        "application.revoke": (m.ApplicationRevoke, grants.application_revoke),
        "application.withdraw": (m.ApplicationRevoke, grants.application_withdraw),
        "task.submit": (m.TaskSubmit, tasks.task_submit),
        "task.cancel": (m.TaskCancel, tasks.task_cancel),
        "run.start": (m.RunStart, tasks.run_start),
        "run.finish": (m.RunFinish, tasks.run_finish),
        "release.decide": (m.ReleaseDecide, tasks.release_decide),
        "usage.record": (m.UsageRecord, usage.usage_record),
        "fl.round": (m.FlRound, fl.fl_round),
        "fl.final": (m.FlFinal, fl.fl_final),
    }


TX_TYPES: tuple[str, ...] = (
    "unit.create",
    "member.add",
    "member.remove",
    "dataset.register",
    "dataset.version",
    "dataset.update",
    "application.submit",
    "application.approve",
    "application.reject",
    "application.revoke",
    "application.withdraw",
    "task.submit",
    "task.cancel",
    "run.start",
    "run.finish",
    "release.decide",
    "usage.record",
    "fl.round",
    "fl.final",
)


class Contract:
    """One instance per chain; stateless apart from a public-key parse cache."""

    def __init__(self, genesis: Genesis) -> None:
        self.genesis = genesis
        self.suite = genesis.crypto
        self.chain = genesis.chain_id
        self._keys: dict[str, PublicKey] = {}
        self._table = _handlers(self)

    # -- genesis -------------------------------------------------------------
    def genesis_writes(self, state: Overlay) -> None:
        """Write the consortium, its orgs and their admin members into ``state``."""
        g = self.genesis
        state.put(
            "consortium",
            {
                "chain_id": g.chain_id,
                "name": g.name,
                "suite": g.suite,
                "orderer": g.orderer_key_id(),
                "params": g.params.model_dump(),
                "trusted_measurements": g.trusted_measurements,
                "tee": g.tee.model_dump(mode="json"),
                "genesis_digest": g.digest(),
            },
        )
        for org in g.orgs:
            key_id = self._genesis_member(
                state, org.id, org.admin_public_key, f"{org.name} admin", "org_admin"
            )
            node = None
            if org.node_public_key:
                node = self._genesis_member(state, org.id, org.node_public_key, f"{org.name} node", "node")
            state.put(
                f"org/{org.id}",
                {
                    "id": org.id,
                    "name": org.name,
                    "credit_code": org.credit_code,
                    "admin": key_id,
                    "node": node,
                },
            )

    def _genesis_member(self, state: Overlay, org: str, public_hex: str, name: str, role: str) -> str:
        key_id = self.suite.load_public(bytes.fromhex(public_hex)).key_id()
        state.put(
            f"member/{key_id}",
            {
                "key_id": key_id,
                "public_key": public_hex,
                "org": org,
                "name": name,
                "roles": [role],
                "unit": None,
                "active": True,
                "added_at": self.genesis.genesis_time,
                "added_tx": "genesis",
            },
        )
        return key_id

    # -- execution -------------------------------------------------------------
    def _key_of(self, member: dict[str, Any]) -> PublicKey:
        # Key ids are digests of the key, so a parsed key can be cached by id forever.
        key = self._keys.get(member["key_id"])
        if key is None:
            key = self._keys[member["key_id"]] = self.suite.load_public(bytes.fromhex(member["public_key"]))
        return key

    def member_key(self, state: StateView, key_id: str) -> PublicKey | None:
        """The public key of an active member, or None (request authentication uses this too)."""
        member = state.get(f"member/{key_id}")
        return None if member is None or not member["active"] else self._key_of(member)

    def _envelope(
        self, state: StateView, stx: SignedTx, tx: Tx, block: BlockInfo, seen: Callable[[str], bool]
    ) -> dict[str, Any]:
        """Chain, replay, window, signer and signature checks; returns the signer's member record."""
        # Signature first: a forged tx must never reach any other check (nor hide behind one).
        member = state.get(f"member/{tx.signer}")
        if member is None or not member["active"]:
            raise Reject(Code.UNKNOWN_SIGNER, "signer is not an active member key")
        key = self._key_of(member)
        try:
            key.verify(stx.signature, TX_DOMAIN + stx.body)
        except InvalidSignature:
            raise Reject(Code.BAD_SIGNATURE, "signature does not verify") from None
        params = self.genesis.params
        if tx.chain != self.chain:
            raise Reject(Code.WRONG_CHAIN, f"tx is for chain {tx.chain!r}, this is {self.chain!r}")
        if seen(tx.tx_id):
            raise Reject(Code.REPLAYED, "this tx id is already on the chain")
        if tx.created_at < block.time - params.tx_window_ms:
            raise Reject(Code.STALE, "created_at is older than the accepted window; sign anew")
        if tx.created_at > block.time + params.max_clock_skew_ms:
            raise Reject(Code.STALE, "created_at is in the future; check the signer's clock")
        return member

    def execute(
        self, state: Overlay, stx: SignedTx, block: BlockInfo, seen: Callable[[str], bool]
    ) -> tuple[str, Result]:
        """Run one tx; on success merge its writes into ``state``. Returns (tx id, result)."""
        tx_id = stx.tx_id(self.suite)
        try:
            tx = decode_tx(stx, self.suite)
        except ValueError as exc:
            return tx_id, Result(Code.MALFORMED, str(exc))
        scratch = Overlay(state)
        ctx = Ctx(scratch, tx, block)
        try:
            ctx._member = self._envelope(state, stx, tx, block, seen)
            entry = self._table.get(tx.type)
            if entry is None:
                raise Reject(Code.UNKNOWN_TYPE, f"unknown tx type {tx.type!r}")
            model, handler = entry
            try:
                payload = model.model_validate(tx.payload)
            except ValidationError as exc:
                raise Reject(Code.MALFORMED, _schema_reason(exc)) from None
            handler(ctx, payload)
        except Reject as rej:
            return tx_id, Result(rej.code, rej.reason, tx_type=tx.type, signer=tx.signer)
        scratch.merge_into(state)
        return tx_id, Result(Code.OK, "", ctx.events, tx_type=tx.type, signer=tx.signer)

    def check(self, state: StateView, stx: SignedTx, block: BlockInfo, seen: Callable[[str], bool]) -> Result:
        """Would ``stx`` be accepted now? Never changes ``state``."""
        return self.execute(Overlay(state), stx, block, seen)[1]

    def query(self, state: StateView, path: str, now: int) -> Any:
        """Read committed state. ``now`` is the latest block time (for expiry)."""
        return run_query(state, path, now)


def _schema_reason(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(x) for x in err["loc"]) or "payload"
        parts.append(f"{loc}: {err['msg']}")
    return "payload invalid: " + "; ".join(parts)
