"""Genesis: the consortium's founding document.

A genesis file (canonical JSON) names the chain id, the crypto suite, the
orderer's public key, the member orgs with their admin keys, the contract
parameters and the trusted enclave measurements. Every node starts from the
same file; its digest is written into block 0, so two nodes with different
genesis files can never accept each other's chains.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..crypto import InvalidKey, Suite, canonical_bytes, get_suite
from .errors import GenesisError

__all__ = [
    "ChainMakerLedger",
    "EvmLedger",
    "FabricLedger",
    "Genesis",
    "GenesisOrg",
    "LedgerConfig",
    "Params",
    "block_derivers",
    "credit_code_check_char",
    "credit_code_valid",
    "genesis_tls_keys",
    "load_genesis",
]

_ID = r"^[a-z0-9][a-z0-9_-]{0,62}$"
_CREDIT_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CREDIT_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def credit_code_check_char(first17: str) -> str:
    """The check character (18th) of a unified social credit code (GB 32100-2015)."""
    total = sum(_CREDIT_ALPHABET.index(c) * w for c, w in zip(first17, _CREDIT_WEIGHTS, strict=True))
    return _CREDIT_ALPHABET[(31 - total % 31) % 31]


def credit_code_valid(code: str) -> bool:
    """Check a unified social credit code (GB 32100-2015): 18 chars, mod-31 check char."""
    if len(code) != 18 or any(c not in _CREDIT_ALPHABET for c in code):
        return False
    total = sum(_CREDIT_ALPHABET.index(c) * w for c, w in zip(code[:17], _CREDIT_WEIGHTS, strict=True))
    check = (31 - total % 31) % 31
    return _CREDIT_ALPHABET[check] == code[17]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class GenesisOrg(_Strict):
    id: str = Field(pattern=_ID)
    name: str = Field(min_length=1, max_length=200)
    credit_code: str | None = None
    admin_public_key: str = Field(description="hex of the admin key's raw public key")
    node_public_key: str | None = Field(default=None, description="hex of the org node's key, if any")

    @field_validator("credit_code")
    @classmethod
    def _credit(cls, v: str | None) -> str | None:
        if v is not None and not credit_code_valid(v):
            raise ValueError(f"{v!r} is not a valid unified social credit code (GB 32100-2015)")
        return v


class Params(_Strict):
    tx_window_ms: int = Field(default=3_600_000, gt=0, description="max age of created_at")
    max_clock_skew_ms: int = Field(default=300_000, ge=0, description="max created_at in future")
    max_block_txs: int = Field(default=2000, gt=0, le=100_000)


class TrustedRuntime(_Strict):
    """An enclave runtime build the consortium trusts (TEE engine).

    A task's MRENCLAVE is recomputed by each data owner from ``runtime_digest``,
    the locked dependencies and the task's code on the ledger.
    """

    name: str = Field(min_length=1, max_length=100)
    runtime_digest: str = Field(pattern=r"^[0-9a-f]{64}$")
    mrsigner: str = Field(pattern=r"^[0-9a-f]{64}$")
    isv_prod_id: int = Field(ge=0, le=65535)
    min_isv_svn: int = Field(ge=0, le=65535)


class TeePolicy(_Strict):
    """Who may vouch for enclaves: attestation roots (P-256, SEC1 hex) and trusted runtimes."""

    attestation_roots: list[str] = Field(default_factory=list, max_length=16)
    trusted_runtimes: list[TrustedRuntime] = Field(default_factory=list, max_length=64)

    @field_validator("attestation_roots")
    @classmethod
    def _roots(cls, roots: list[str]) -> list[str]:
        for r in roots:
            if len(r) != 130 or not r.startswith("04") or any(c not in "0123456789abcdef" for c in r):
                raise ValueError("attestation roots are uncompressed P-256 points: 130 lower-case hex chars")
        return roots


class EvmLedger(_Strict):
    """Where an ``evm`` consortium's log lives (``chain/evm/ConfideLog.sol``, see docs/ledger-evm.md)."""

    chain_id: int | None = Field(default=None, ge=1, description="the EVM chain id; checked when set")
    log_address: str | None = Field(default=None, pattern=r"^0x[0-9a-fA-F]{40}$")
    confirmations: int = Field(default=0, ge=0, le=1000, description="blocks deep before a block is read")


class ChainMakerLedger(_Strict):
    """Where a ``chainmaker`` consortium's log lives: the same ``ConfideLog.sol`` on ChainMaker's EVM
    runtime (see docs/ledger-chainmaker.md). Each node's own SDK config (``sdk_config.yml``: its
    client certificate, key and the nodes it talks to) is in its node.json, not here."""

    chain_id: str = Field(
        default="chain1", pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="ChainMaker chain id"
    )
    contract_name: str = Field(default="confide_log", pattern=r"^[A-Za-z0-9_]{1,64}$")


class FabricLedger(_Strict):
    """Where a ``fabric`` consortium's log lives: the ``ConfideLog`` chaincode on a channel (see
    docs/ledger-fabric.md). Each node's Gateway peer, MSP id, certificate and key are in its
    node.json."""

    channel: str = Field(default="confide", pattern=r"^[a-z][a-z0-9.-]{0,248}$")
    chaincode: str = Field(default="confide-log", pattern=r"^[A-Za-z0-9_.+-]{1,64}$")


class LedgerConfig(_Strict):
    """Which chain orders the consortium's transactions. ``embedded``: the solo orderer signs blocks.
    ``evm``: an EVM chain orders them; ``etcd``: an etcd cluster (Raft, one member per org) does;
    ``chainmaker`` and ``fabric``: those networks do (the log contract or chaincode).
    Every node derives the same blocks from the log; such derived blocks carry an anchor (where in
    the log they come from) and are signed by the node that derived them."""

    backend: Literal["embedded", "evm", "etcd", "chainmaker", "fabric"] = "embedded"
    evm: EvmLedger = EvmLedger()
    chainmaker: ChainMakerLedger = ChainMakerLedger()
    fabric: FabricLedger = FabricLedger()


class Genesis(_Strict):
    chain_id: str = Field(pattern=_ID)
    name: str = Field(min_length=1, max_length=200)
    suite: str = "default"
    genesis_time: int = Field(ge=0, description="ms since epoch, UTC")
    orderer_public_key: str
    orgs: list[GenesisOrg] = Field(min_length=1)
    params: Params = Params()
    trusted_measurements: list[dict[str, Any]] = Field(default_factory=list)
    tee: TeePolicy = TeePolicy()
    ledger: LedgerConfig = LedgerConfig()

    @model_validator(mode="after")
    def _consistent(self) -> Genesis:
        ids = [o.id for o in self.orgs]
        if len(set(ids)) != len(ids):
            raise ValueError("orgs: org ids must be unique")
        suite = get_suite(self.suite)
        keys = [self.orderer_public_key, *(o.admin_public_key for o in self.orgs)]
        keys += [o.node_public_key for o in self.orgs if o.node_public_key]
        try:
            parsed = [suite.load_public(bytes.fromhex(k)) for k in keys]
        except (ValueError, InvalidKey) as exc:
            raise ValueError(f"a public key is not a valid {self.suite!r} key: {exc}") from None
        if len({p.raw() for p in parsed}) != len(parsed):
            raise ValueError("orderer_public_key and every org admin and node key must all differ")
        return self

    @property
    def crypto(self) -> Suite:
        return get_suite(self.suite)

    def canonical(self) -> bytes:
        """Canonical bytes of the document; fields left at their defaults are omitted, so
        adding an optional field in a later version does not change existing chains' digests."""
        return canonical_bytes(self.model_dump(mode="json", exclude_defaults=True))

    def digest(self) -> str:
        return self.crypto.hash(self.canonical()).hex()

    def orderer_key_id(self) -> str:
        return self.crypto.load_public(bytes.fromhex(self.orderer_public_key)).key_id()

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(json.dumps(self.model_dump(mode="json"), indent=2).encode() + b"\n")
        return p


def block_derivers(genesis: Genesis) -> list[str]:
    """Public keys (hex) that may sign derived blocks (``evm``, ``etcd``, ``fabric``, ``chainmaker``):
    the orderer key's and every node's. Empty for an ``embedded`` consortium, whose blocks only the
    orderer signs."""
    if genesis.ledger.backend == "embedded":
        return []
    return genesis_tls_keys(genesis)


def genesis_tls_keys(genesis: Genesis) -> list[str]:
    """Public keys (hex) that may hold TLS certificates: the orderer's and every node's."""
    return [genesis.orderer_public_key, *(o.node_public_key for o in genesis.orgs if o.node_public_key)]


def load_genesis(path: str | Path) -> Genesis:
    p = Path(path)
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GenesisError(f"genesis file {p} not found; create one with 'confide ledger init'") from None
    except json.JSONDecodeError as exc:
        raise GenesisError(f"genesis file {p} is not JSON: {exc}") from None
    try:
        return Genesis.model_validate(raw)
    except ValidationError as exc:
        raise GenesisError(f"genesis file {p} is invalid:\n{exc}") from None
