"""Payload schemas of every transaction type (pydantic, strict, no extra fields).

One model per tx type; the contract validates the payload with it before any
handler runs, so handlers see only well-formed input. A schema error becomes a
``MALFORMED`` rejection naming the field.
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .schedule import Schedule

__all__ = [
    "ENGINES",
    "ROLES",
    "ApplicationDecide",
    "ApplicationRevoke",
    "ApplicationSubmit",
    "ColumnSpec",
    "DatasetKind",
    "DatasetRegister",
    "DatasetUpdate",
    "DatasetVersion",
    "FlFinal",
    "FlRound",
    "MemberAdd",
    "MemberRemove",
    "ReleaseDecide",
    "RunFinish",
    "RunStart",
    "TaskCancel",
    "TaskInput",
    "TaskSubmit",
    "TeeAttestation",
    "UnitCreate",
    "UsageRecord",
    "Visibility",
]

Ident = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
DatasetId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}(/[a-z0-9][a-z0-9_-]{0,62}){2}$")]
Hex64 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
_HEX64 = re.compile(r"[0-9a-f]{64}")
Text = Annotated[str, Field(max_length=2000)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
ColumnName = Annotated[str, Field(min_length=1, max_length=128)]
Ms = Annotated[int, Field(ge=0)]

ROLES = ("org_admin", "unit_owner", "analyst", "auditor", "node")
# "api": direct calls to an API-type data service, through the owner's node.
ENGINES = ("tee", "psi", "mpc", "fl", "api")
# "node": an org node's own key; it authenticates node links and may sign nothing else yet.
Role = Literal["org_admin", "unit_owner", "analyst", "auditor", "node"]
Engine = Literal["tee", "psi", "mpc", "fl", "api"]


class _P(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


DatasetKind = Literal["table", "document", "files", "api"]


class MemberAdd(_P):
    public_key: Annotated[str, Field(pattern=r"^[0-9a-f]{64,200}$")]
    name: Name
    roles: list[Role] = Field(min_length=1, max_length=5)
    unit: Ident | None = None

    @model_validator(mode="after")
    def _unit_owner_needs_unit(self) -> MemberAdd:
        if ("unit_owner" in self.roles) != (self.unit is not None):
            raise ValueError("roles/unit: a unit_owner must name its unit, and only a unit_owner")
        return self


class MemberRemove(_P):
    key_id: Hex64


class UnitCreate(_P):
    unit: Ident
    name: Name
    description: Text = ""


class ColumnSpec(_P):
    name: ColumnName
    type: Annotated[str, Field(min_length=1, max_length=64)]
    nullable: bool = True
    description: Text = ""


class Visibility(_P):
    mode: Literal["consortium", "orgs", "private"] = "consortium"
    orgs: list[Ident] = Field(default_factory=list, max_length=100)

    @model_validator(mode="after")
    def _orgs_only_for_orgs_mode(self) -> Visibility:
        if (self.mode == "orgs") != bool(self.orgs):
            raise ValueError("mode/orgs: list orgs exactly when mode is 'orgs'")
        return self


class _VersionFields(_P):
    schema_: list[ColumnSpec] = Field(alias="schema", max_length=2000)
    row_count: Annotated[int, Field(ge=0)]
    content_digest: Hex64

    @field_validator("schema_")
    @classmethod
    def _unique_columns(cls, cols: list[ColumnSpec]) -> list[ColumnSpec]:
        names = [c.name for c in cols]
        if len(set(names)) != len(names):
            raise ValueError("column names must be unique")
        return cols


class DatasetRegister(_VersionFields):
    unit: Ident
    name: Ident
    title: Name
    kind: DatasetKind
    description: Text = ""
    tags: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=32
    )
    visibility: Visibility = Visibility()
    approval_levels: list[Literal["unit", "org"]] = Field(default=["unit"], min_length=1)
    # Every output row of a computation over this dataset must aggregate at least this many input
    # rows (its ``group_size`` column); checked inside the enclave and again at release.
    min_group_size: Annotated[int, Field(ge=2, le=1_000_000)] | None = None

    @model_validator(mode="after")
    def _levels(self) -> DatasetRegister:
        if self.approval_levels not in (["unit"], ["org"], ["unit", "org"]):
            raise ValueError("approval_levels: one of ['unit'], ['org'], ['unit', 'org']")
        return self


class DatasetVersion(_VersionFields):
    dataset: DatasetId


class DatasetUpdate(_P):
    dataset: DatasetId
    title: Name | None = None
    description: Text | None = None
    tags: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = None
    visibility: Visibility | None = None


class ApplicationSubmit(_P):
    dataset: DatasetId
    purpose: Annotated[str, Field(min_length=1, max_length=2000)]
    columns: list[ColumnName] = Field(min_length=1, max_length=2000)
    engines: list[Engine] = Field(min_length=1, max_length=5)
    expires_at: Ms
    max_uses: Annotated[int, Field(ge=1, le=1_000_000)]
    versions: Literal["latest"] | list[Annotated[int, Field(ge=1)]] = "latest"


class ApplicationDecide(_P):
    application: Hex64
    level: Literal["unit", "org"]
    reason: Text = ""


class ApplicationRevoke(_P):
    application: Hex64
    reason: Annotated[str, Field(min_length=1, max_length=2000)]


class TaskInput(_P):
    dataset: DatasetId
    grant: Hex64
    columns: list[ColumnName] = Field(min_length=1, max_length=2000)


class TaskSubmit(_P):
    engine: Engine
    inputs: list[TaskInput] = Field(min_length=1, max_length=16)
    code_digest: Hex64
    # The task's code (SQL text or a registered function's source): on the ledger so every
    # data owner can read what will run and recompute the enclave measurement. Required for tee.
    code: Annotated[str, Field(max_length=65_536)] | None = None
    params: dict[str, str | int | bool | None] = Field(default_factory=dict, max_length=64)
    # "now": runs are started by hand; a Schedule (a point in time, or cron in a zone): the scheduler
    # of the requester org's node starts one run per slot (see ``schedule``)
    schedule: Schedule | Literal["now"] = "now"

    @model_validator(mode="after")
    def _code(self) -> TaskSubmit:
        if self.engine == "tee" and self.code is None:
            raise ValueError("code: a tee task carries its code so owners can verify the measurement")
        if (
            self.code is not None
            and hashlib.sha256(self.code.encode("utf-8")).hexdigest() != self.code_digest
        ):
            raise ValueError("code/code_digest: code_digest must be the SHA-256 of code")
        recipient = self.params.get("recipient")
        if recipient is not None and not (isinstance(recipient, str) and _HEX64.fullmatch(recipient)):
            raise ValueError("params.recipient: the X25519 key a tee result is encrypted to, 64 hex digits")
        return self


class TaskCancel(_P):
    task: Hex64
    reason: Text = ""


class TeeAttestation(_P):
    """The enclave a tee run uses: its quote and the keys and block its REPORT_DATA binds.

    Every data owner's node verifies it against its own ledger view before sending anything.
    """

    tee_type: Literal["simulated"]
    quote: Annotated[str, Field(pattern=r"^(?:[0-9a-f]{2}){432,8192}$")]
    channel_pub: Hex64
    result_pub: Hex64
    block_hash: Hex64
    host_org: Ident


class RunStart(_P):
    task: Hex64
    input_digests: list[Hex64] = Field(min_length=1, max_length=16)
    slot: Ms | None = None  # a scheduled task's run names its slot (UTC ms); one run per slot
    attestation_digest: Hex64 | None = None
    attestation: TeeAttestation | None = None

    @model_validator(mode="after")
    def _digest_of_quote(self) -> RunStart:
        if self.attestation is not None and self.attestation_digest not in (
            None,
            hashlib.sha256(bytes.fromhex(self.attestation.quote)).hexdigest(),
        ):
            raise ValueError("attestation_digest: must be the SHA-256 of attestation.quote")
        return self


class RunFinish(_P):
    run: Hex64
    # cancelled: the requester (or the scheduler that started it) stopped it; every party's node
    # then stops its part and erases what it computed (no release record is opened)
    status: Literal["succeeded", "failed", "cancelled"]
    output_digest: Hex64 | None = None
    reason: Text = ""
    # tee runs: the enclave's result statement and its Ed25519 signature by the attested result key
    statement: dict[str, Any] | None = None
    signature: Annotated[str, Field(pattern=r"^[0-9a-f]{128}$")] | None = None

    @model_validator(mode="after")
    def _digest_iff_success(self) -> RunFinish:
        if (self.status == "succeeded") != (self.output_digest is not None):
            raise ValueError("status/output_digest: a succeeded run has an output digest")
        if (self.statement is None) != (self.signature is None):
            raise ValueError("statement/signature: give both or neither")
        if self.statement is not None and self.status != "succeeded":
            raise ValueError("statement: only a succeeded run carries a result statement")
        return self


MetricValue = Annotated[str, Field(pattern=r"^-?[0-9]+(\.[0-9]+)?$|^inf$", max_length=40)] | int
OrgList = list[Ident]


class FlRound(_P):
    """One completed federated round, recorded by the coordinator (a node of the requester's org).

    Round 0 is the set-up (feature statistics by secure aggregation, the initial model); rounds
    1..``params.rounds`` are training rounds. ``participants``: the orgs whose masked update is in the
    round's sum (the secure-aggregation survivors); ``dropped``: the other input orgs.
    """

    run: Hex64
    round: Annotated[int, Field(ge=0, le=10_000)]
    participants: OrgList = Field(min_length=2, max_length=16)
    dropped: OrgList = Field(default_factory=list, max_length=16)
    model_digest: Hex64


class FlFinal(_P):
    """The final model of an fl run and its validation metrics (aggregated securely over the
    participants' holdout rows), recorded by the coordinator; what the owners see before release."""

    run: Hex64
    model_digest: Hex64
    participants: OrgList = Field(min_length=2, max_length=16)
    metrics: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,47}$")], MetricValue] = Field(
        min_length=1, max_length=32
    )


class UsageRecord(_P):
    """One call of an API-type dataset, served by the owner's node under a grant."""

    grant: Hex64
    dataset: DatasetId
    request_digest: Hex64
    response_digest: Hex64


class ReleaseDecide(_P):
    run: Hex64
    dataset: DatasetId
    decision: Literal["approve", "reject"]
    reason: Text = ""
    # tee runs: the owner confirms the input digest its node computed over the frames it sent
    input_digest: Hex64 | None = None
