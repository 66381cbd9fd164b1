"""Everything a running node holds: config, keys, store, replica, follower, ledger link."""

from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..crypto import Identity, PublicKey, load_identity
from ..crypto.httpsig import NonceStore
from ..crypto.tls import check_bundle, check_own_certificate, client_context
from ..ledger.backend import LedgerBackend
from ..ledger.contract import Contract
from ..ledger.embedded import Replica
from ..ledger.embedded.store import DBState
from ..ledger.genesis import Genesis, genesis_tls_keys, load_genesis
from ..ledger.remote import RemoteLedger
from ..ledger.store import ChainStore
from .config import ConfigError, NodeConfig
from .follower import Follower
from .local_db import LocalDB
from .storage import SqlChainStore

if TYPE_CHECKING:
    from ..ledger.derived import LogNodeLedger

__all__ = ["NodeContext"]


@dataclass
class NodeContext:
    config: NodeConfig
    genesis: Genesis
    identity: Identity
    store: ChainStore
    replica: Replica
    remote: LedgerBackend
    follower: Follower
    local: LocalDB
    lock: threading.RLock

    @classmethod
    def open(cls, config: NodeConfig) -> NodeContext:
        genesis = load_genesis(config.genesis)
        identity = load_identity(config.node_key, genesis.suite)
        store = SqlChainStore(config.database_url)
        replica = Replica(store, genesis)
        verify: ssl.SSLContext | bool = True
        if config.tls_cert is not None and config.ca_bundle is not None:
            check_own_certificate(config.tls_cert, identity)
            check_bundle(config.ca_bundle, genesis_tls_keys(genesis))
            verify = client_context(config.ca_bundle)
        lock = threading.RLock()
        remote: LedgerBackend
        evm = None
        if genesis.ledger.backend == "evm":
            remote = evm = _evm_ledger(config, genesis, identity, replica, lock)
        elif genesis.ledger.backend == "etcd":
            remote = evm = _etcd_ledger(config, genesis, identity, replica, lock)
        elif genesis.ledger.backend == "fabric":
            remote = evm = _fabric_ledger(config, genesis, identity, replica, lock)
        elif genesis.ledger.backend == "chainmaker":
            remote = evm = _chainmaker_ledger(config, genesis, identity, replica, lock)
        elif config.orderer_url is None:
            raise ConfigError("node.json: orderer_url is required (the consortium uses the embedded ledger)")
        else:
            remote = RemoteLedger(url=config.orderer_url, identity=identity, genesis=genesis, verify=verify)
        follower = Follower(replica, remote, lock, config.poll_ms / 1000)
        if evm is not None:
            evm.nudge = follower.nudge
        local = LocalDB(config.database_url)
        return cls(config, genesis, identity, store, replica, remote, follower, local, lock)

    @property
    def nonces(self) -> NonceStore:
        """Request nonces persist in the node's database: a replay after a restart is still refused."""
        return self.local

    @property
    def contract(self) -> Contract:
        return self.replica.contract

    @property
    def state(self) -> DBState:
        return self.replica.state

    def now(self) -> int:
        header = self.replica.head_header
        return header.time if header is not None else self.genesis.genesis_time

    def query(self, path: str) -> Any:
        with self.lock:
            return self.contract.query(self.state, path, self.now())

    def query_or_none(self, path: str) -> Any:
        try:
            return self.query(path)
        except LookupError:
            return None

    def stopped_run(self, run_id: str) -> str | None:
        """``cancelled`` or ``failed`` when that run ended so on this node's ledger view (every party
        then stops its part and erases what it kept for the run); else None."""
        run = self.query_or_none(f"run/{run_id}")
        status = None if run is None else run["status"]
        return status if status in ("cancelled", "failed") else None

    def member(self, key_id: str) -> dict[str, Any] | None:
        with self.lock:
            m = self.state.get(f"member/{key_id}")
        return m if m is not None and m["active"] else None

    def public_key(self, key_id: str) -> PublicKey | None:
        with self.lock:
            return self.contract.member_key(self.state, key_id)

    def close(self) -> None:
        self.follower.stop()
        self.remote.close()
        self.store.close()
        self.local.close()


def _evm_ledger(
    config: NodeConfig, genesis: Genesis, identity: Identity, replica: Replica, lock: threading.RLock
) -> LogNodeLedger:
    """The node's link to an evm chain (imported here: web3 is only needed by evm consortia)."""
    from ..ledger.evm.backend import EvmNodeLedger

    if config.evm_rpc_url is None or config.evm_account_key is None:
        raise ConfigError("node.json: an evm consortium's node needs evm_rpc_url and evm_account_key")
    key = config.evm_account_key.read_text(encoding="utf-8").strip()
    return EvmNodeLedger(
        genesis=genesis,
        identity=identity,
        replica=replica,
        lock=lock,
        rpc_url=config.evm_rpc_url,
        account_key=key,
    )


def _etcd_ledger(
    config: NodeConfig, genesis: Genesis, identity: Identity, replica: Replica, lock: threading.RLock
) -> LogNodeLedger:
    """The node's link to the consortium's etcd cluster (this org's member first)."""
    from ..ledger.etcd.backend import EtcdNodeLedger

    if not config.etcd_endpoints:
        raise ConfigError(
            "node.json: an etcd consortium's node needs etcd_endpoints (its member's URL first)"
        )
    return EtcdNodeLedger(
        genesis=genesis, identity=identity, replica=replica, lock=lock, endpoints=config.etcd_endpoints
    )


def _fabric_ledger(
    config: NodeConfig, genesis: Genesis, identity: Identity, replica: Replica, lock: threading.RLock
) -> LogNodeLedger:
    """The node's link to the consortium's Fabric channel, through its org's gateway peer."""
    from ..ledger.fabric.backend import FabricNodeLedger
    from ..ledger.fabric.msp import FabricIdentity

    if not (config.fabric_gateway and config.fabric_msp_id and config.fabric_cert and config.fabric_key):
        raise ConfigError(
            "node.json: a fabric consortium's node needs fabric_gateway, fabric_msp_id, fabric_cert "
            "and fabric_key"
        )
    tls_root = config.fabric_tls_root.read_bytes() if config.fabric_tls_root else None
    return FabricNodeLedger(
        genesis=genesis,
        identity=identity,
        replica=replica,
        lock=lock,
        gateway=config.fabric_gateway,
        fabric_identity=FabricIdentity.load(config.fabric_msp_id, config.fabric_cert, config.fabric_key),
        tls_root_pem=tls_root,
    )


def _chainmaker_ledger(
    config: NodeConfig, genesis: Genesis, identity: Identity, replica: Replica, lock: threading.RLock
) -> LogNodeLedger:
    """The node's link to the consortium's ChainMaker chain (the SDK runs in .chainmaker-venv)."""
    from ..ledger.chainmaker.backend import ChainMakerNodeLedger

    if config.chainmaker_sdk_config is None:
        raise ConfigError(
            "node.json: a chainmaker consortium's node needs chainmaker_sdk_config (its sdk_config.yml)"
        )
    return ChainMakerNodeLedger(
        genesis=genesis,
        identity=identity,
        replica=replica,
        lock=lock,
        sdk_config=config.chainmaker_sdk_config,
    )
