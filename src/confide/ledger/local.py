"""A local ledger workspace: one folder holding a consortium's embedded chain.

Layout::

    DIR/genesis.json           the consortium's genesis (public keys only)
    DIR/keys/orderer.pem       the orderer's signing key (0600)
    DIR/keys/<org>-admin.pem   each org admin's key (0600); more keys as members are added
    DIR/chain.sqlite           the orderer's block + state store

This is what ``confide ledger ...`` and ``make demo`` drive. Later issues run
the orderer as a service and give each org its own node and folder.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..crypto import Identity, get_suite, load_identity
from .embedded import ChainDB, EmbeddedBackend
from .errors import LedgerError
from .genesis import Genesis, GenesisOrg, load_genesis

__all__ = ["LocalLedger", "OrgSpec", "init_workspace"]


@dataclass(frozen=True)
class OrgSpec:
    id: str
    name: str
    credit_code: str | None = None


def init_workspace(
    directory: str | Path,
    orgs: Sequence[OrgSpec],
    *,
    chain_id: str = "confide-local",
    name: str = "Confide local consortium",
    suite: str = "default",
    genesis_time: int | None = None,
    max_block_txs: int = 2000,
) -> Path:
    """Create keys, genesis and the chain's block 0. Refuses to overwrite a workspace."""
    d = Path(directory)
    if (d / "genesis.json").exists() or (d / "chain.sqlite").exists():
        raise LedgerError(f"{d} already holds a ledger; pick an empty folder or delete it first")
    s = get_suite(suite)
    orderer = Identity.generate(s)
    admins = {o.id: Identity.generate(s) for o in orgs}
    genesis = Genesis.model_validate(
        {
            "chain_id": chain_id,
            "name": name,
            "suite": suite,
            "genesis_time": genesis_time if genesis_time is not None else int(time.time() * 1000),
            "orderer_public_key": orderer.public_hex,
            "orgs": [
                GenesisOrg(
                    id=o.id, name=o.name, credit_code=o.credit_code, admin_public_key=admins[o.id].public_hex
                ).model_dump()
                for o in orgs
            ],
            "params": {"max_block_txs": max_block_txs},
        }
    )
    orderer.save(d / "keys" / "orderer.pem")
    for org_id, ident in admins.items():
        ident.save(d / "keys" / f"{org_id}-admin.pem")
    genesis.save(d / "genesis.json")
    LocalLedger(d).close()  # writes block 0
    return d


class LocalLedger:
    """Open a workspace: genesis, orderer and store."""

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        self.genesis = load_genesis(self.dir / "genesis.json")
        orderer = load_identity(self.dir / "keys" / "orderer.pem", self.genesis.suite)
        self.backend = EmbeddedBackend(
            genesis=self.genesis, orderer_identity=orderer, path=self.dir / "chain.sqlite"
        )

    @property
    def db(self) -> ChainDB:
        return self.backend.db

    def key(self, name: str) -> Identity:
        """Load a signing key by file path or by short name (``bank-admin`` → keys/bank-admin.pem)."""
        p = Path(name)
        if not p.suffix and len(p.parts) == 1:
            p = self.dir / "keys" / f"{name}.pem"
        return load_identity(p, self.genesis.suite)

    def close(self) -> None:
        self.backend.close()
