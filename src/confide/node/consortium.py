"""``confide consortium init``: a genesis plus one folder per org node and one for the orderer.

Layout::

    C/genesis.json
    C/orderer/orderer.json, keys/orderer.pem, chain.sqlite (created on start)
    C/<org>/node.json, keys/node.pem, keys/admin.pem, data/, node.sqlite (created on start)
    C/tee/...,  C/<org>/tee/...  simulated TEE authority and each node's enclave-host platform
                                 (``confide.engines.tee.platform``; with ``tee=True``)

Private keys are 0600 PKCS#8 PEM. In production each org generates its own
keys and sends only public keys to the consortium operator; this command does
everything in one place for local consortia, demos and tests.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..crypto import Identity, get_suite
from ..crypto.tls import make_certificate
from ..engines.tee.platform import make_authority, provision_host
from ..ledger.errors import LedgerError
from ..ledger.genesis import Genesis

__all__ = ["FabricOrg", "OrgEntry", "init_consortium"]


@dataclass(frozen=True)
class OrgEntry:
    id: str
    name: str
    credit_code: str | None = None


@dataclass(frozen=True)
class FabricOrg:
    """An org's way into a Fabric channel: its gateway peer and the client identity its Fabric CA
    issued (MSP id, certificate and key files; copied into the org's ``keys/``)."""

    gateway: str
    msp_id: str
    cert: Path
    key: Path
    tls_root: Path | None = None  # the gateway's TLS CA (None: plaintext)


def _write_json(path: Path, obj: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _write_certs(
    d: Path, genesis_ms: int, orderer: Identity, nodes: dict[str, Identity]
) -> dict[str, dict[str, str]]:
    """One certificate per process from its ledger key, plus the bundle every process trusts."""
    not_before = dt.datetime.fromtimestamp(genesis_ms / 1000, dt.UTC) - dt.timedelta(days=1)
    certs = {"orderer": make_certificate(orderer, "orderer", not_before=not_before)}
    certs |= {org: make_certificate(ident, org, not_before=not_before) for org, ident in nodes.items()}
    (d / "certs").mkdir(parents=True, exist_ok=True)
    for name, pem in certs.items():
        (d / "certs" / f"{name}.pem").write_bytes(pem)
    (d / "certs" / "bundle.pem").write_bytes(b"".join(certs.values()))
    return {name: {"tls_cert": f"../certs/{name}.pem", "ca_bundle": "../certs/bundle.pem"} for name in certs}


def init_consortium(
    directory: str | Path,
    orgs: Sequence[OrgEntry],
    *,
    chain_id: str = "confide-local",
    name: str = "Confide consortium",
    suite: str = "default",
    host: str = "127.0.0.1",
    base_port: int = 8100,
    database_url: str | None = None,
    tls: bool = True,
    tee: bool = True,
    ledger: str = "embedded",
    evm_rpc_url: str | None = None,
    evm_funder_key: str | None = None,
    evm_confirmations: int = 0,
    etcd_endpoints: Sequence[str] = (),
    fabric_orgs: Sequence[FabricOrg] = (),
    fabric_channel: str = "confide",
    fabric_chaincode: str = "confide-log",
    chainmaker_configs: Sequence[Path] = (),
    chainmaker_admin_config: Path | None = None,
    chainmaker_chain_id: str = "chain1",
    chainmaker_contract: str = "confide_log",
) -> Path:
    """Create the consortium folders. ``database_url`` may hold ``{org}`` (default: SQLite per node).

    With ``tls`` every process gets a certificate made from its ledger key
    (``certs/``), and all URLs are https. With ``ledger="evm"`` the consortium's log is deployed on
    the EVM chain at ``evm_rpc_url`` by the account ``evm_funder_key`` (0x...), which also sends each
    node's new gas account some funds (skip with a chain whose gas price is 0); there is no orderer
    process, each node follows the log (see docs/ledger-evm.md). With ``ledger="fabric"`` the
    ``ConfideLog`` chaincode already committed on ``fabric_channel`` is bound to this consortium
    (docs/ledger-fabric.md); ``fabric_orgs`` gives each org's gateway and identity, in order. With
    ``ledger="chainmaker"`` the log contract is deployed on the ChainMaker chain with
    ``chainmaker_admin_config`` (an SDK config whose endorsers satisfy the chain's contract policy);
    ``chainmaker_configs`` is each org's own sdk_config.yml, in order (docs/ledger-chainmaker.md).
    """
    d = Path(directory)
    if (d / "genesis.json").exists():
        raise LedgerError(f"{d} already holds a consortium; pick an empty folder")
    if tls and suite != "default":
        raise LedgerError(f"TLS from ledger keys needs suite 'default', not {suite!r}; pass --no-tls for now")
    s = get_suite(suite)
    orderer = Identity.generate(s)
    admins = {o.id: Identity.generate(s) for o in orgs}
    nodes = {o.id: Identity.generate(s) for o in orgs}
    tee_policy: dict[str, object] = {}
    if tee:  # every org node may host enclaves; the genesis names the root and the trusted runtime
        tee_policy = {"tee": make_authority(d / "tee")}
    ledger_cfg: dict[str, object] = {}
    evm_keys: dict[str, str] = {}
    if ledger == "evm":
        ledger_cfg, evm_keys = _evm_setup(
            chain_id, [o.id for o in orgs], evm_rpc_url, evm_funder_key, evm_confirmations
        )
    elif ledger == "etcd":
        if len(etcd_endpoints) != len(orgs):
            raise LedgerError(
                "an etcd consortium needs one etcd member per org: --etcd-endpoint for each, in order"
            )
        ledger_cfg = {"ledger": {"backend": "etcd"}}
    elif ledger == "fabric":
        if len(fabric_orgs) != len(orgs):
            raise LedgerError("a fabric consortium needs each org's gateway and identity, in the orgs' order")
        from ..ledger.fabric.msp import FabricIdentity

        for f in fabric_orgs:  # every org's identity loads (cert and key match) before anything is written
            FabricIdentity.load(f.msp_id, f.cert, f.key)
        _fabric_bind(chain_id, fabric_orgs[0], fabric_channel, fabric_chaincode)
        ledger_cfg = {
            "ledger": {
                "backend": "fabric",
                "fabric": {"channel": fabric_channel, "chaincode": fabric_chaincode},
            }
        }
    elif ledger == "chainmaker":
        if len(chainmaker_configs) != len(orgs) or chainmaker_admin_config is None:
            raise LedgerError(
                "a chainmaker consortium needs each org's sdk_config.yml, in the orgs' order, and an admin "
                "sdk_config.yml that may deploy contracts"
            )
        cm = {"chain_id": chainmaker_chain_id, "contract_name": chainmaker_contract}
        _chainmaker_deploy(chain_id, cm, chainmaker_admin_config)
        ledger_cfg = {"ledger": {"backend": "chainmaker", "chainmaker": cm}}
    elif ledger != "embedded":
        raise LedgerError(f"ledger {ledger!r}: embedded, evm, etcd, fabric or chainmaker")
    genesis = Genesis.model_validate(
        {
            "chain_id": chain_id,
            "name": name,
            "suite": suite,
            "genesis_time": int(time.time() * 1000),
            "orderer_public_key": orderer.public_hex,
            "orgs": [
                {
                    "id": o.id,
                    "name": o.name,
                    "credit_code": o.credit_code,
                    "admin_public_key": admins[o.id].public_hex,
                    "node_public_key": nodes[o.id].public_hex,
                }
                for o in orgs
            ],
            **tee_policy,
            **ledger_cfg,
        }
    )
    genesis.save(d / "genesis.json")
    orderer.save(d / "orderer" / "keys" / "orderer.pem")
    scheme = "https" if tls else "http"
    orderer_url = f"{scheme}://{host}:{base_port}"
    tls_files: dict[str, dict[str, str]] = {}
    if tls:
        tls_files = _write_certs(d, genesis.genesis_time, orderer, nodes)
    _write_json(
        d / "orderer" / "orderer.json",
        {
            "host": host,
            "port": base_port,
            "genesis": "../genesis.json",
            "key": "keys/orderer.pem",
            "store": "chain.sqlite",
            "batch_ms": 20,
            **tls_files.get("orderer", {}),
        },
    )
    peers = {o.id: f"{scheme}://{host}:{base_port + 1 + i}" for i, o in enumerate(orgs)}
    for i, o in enumerate(orgs):
        od = d / o.id
        admins[o.id].save(od / "keys" / "admin.pem")
        nodes[o.id].save(od / "keys" / "node.pem")
        (od / "data").mkdir(parents=True, exist_ok=True)
        tee_files: dict[str, str] = {}
        if tee:
            provision_host(d / "tee", od / "tee")
            tee_files = {"tee_dir": "tee", "runtime_build": "../tee/runtime-build.json"}
        db = database_url.format(org=o.id) if database_url else "sqlite:///node.sqlite"
        ledger_files: dict[str, object] = {}
        if o.id in evm_keys:
            (od / "keys" / "evm.key").write_text(evm_keys[o.id] + "\n", encoding="utf-8")
            (od / "keys" / "evm.key").chmod(0o600)
            ledger_files = {"evm_rpc_url": str(evm_rpc_url), "evm_account_key": "keys/evm.key"}
        if ledger == "etcd":  # this org's member first, the others as fallbacks
            ledger_files = {
                "etcd_endpoints": [etcd_endpoints[i], *(e for j, e in enumerate(etcd_endpoints) if j != i)]
            }
        if ledger == "fabric":
            f = fabric_orgs[i]
            for src, dst in ((f.cert, "fabric-cert.pem"), (f.key, "fabric-key.pem")):
                (od / "keys" / dst).write_bytes(Path(src).read_bytes())
                (od / "keys" / dst).chmod(0o600)
            ledger_files = {
                "fabric_gateway": f.gateway,
                "fabric_msp_id": f.msp_id,
                "fabric_cert": "keys/fabric-cert.pem",
                "fabric_key": "keys/fabric-key.pem",
            }
            if f.tls_root is not None:
                (od / "keys" / "fabric-tls-root.pem").write_bytes(Path(f.tls_root).read_bytes())
                ledger_files["fabric_tls_root"] = "keys/fabric-tls-root.pem"
        if ledger == "chainmaker":  # the org's own SDK config, where it is (it names its certificates)
            ledger_files = {"chainmaker_sdk_config": str(Path(chainmaker_configs[i]).resolve())}
        _write_json(
            od / "node.json",
            {
                "org": o.id,
                "host": host,
                "port": base_port + 1 + i,
                "console_port": base_port + 1 + len(orgs) + i,  # http on loopback; see NodeConfig
                **({"orderer_url": orderer_url} if ledger == "embedded" else {}),
                **ledger_files,
                "database_url": db,
                "data_dir": "data",
                "node_key": "keys/node.pem",
                "genesis": "../genesis.json",
                **tls_files.get(o.id, {}),
                **tee_files,
                "peers": {k: v for k, v in peers.items() if k != o.id},
            },
        )
    return d


def _evm_setup(
    chain_id: str, orgs: list[str], rpc_url: str | None, funder_key: str | None, confirmations: int
) -> tuple[dict[str, object], dict[str, str]]:
    """Deploy the consortium's log and make one funded gas account per node."""
    import secrets

    from ..ledger.evm import EvmLog
    from ..ledger.evm.backend import log_tag

    if rpc_url is None or funder_key is None:
        raise LedgerError(
            "an evm consortium needs --evm-rpc (the chain's endpoint) and --evm-key (a funded account)"
        )
    log = EvmLog.deploy(rpc_url, funder_key, log_tag(chain_id))
    keys = {o: "0x" + secrets.token_hex(32) for o in orgs}
    for key in keys.values():
        log.fund(key, 10**20)
    cfg = {
        "backend": "evm",
        "evm": {
            "chain_id": int(log.w3.eth.chain_id),
            "log_address": log.address,
            "confirmations": confirmations,
        },
    }
    return {"ledger": cfg}, keys


def _fabric_bind(chain_id: str, org: FabricOrg, channel: str, chaincode: str) -> None:
    """Bind the committed ``ConfideLog`` chaincode to this consortium (once; again is a no-op)."""
    from ..ledger.fabric.gateway import FabricError, FabricGateway
    from ..ledger.fabric.log import FabricLog
    from ..ledger.fabric.msp import FabricIdentity
    from ..ledger.ordered_log import log_tag

    tls_root = Path(org.tls_root).read_bytes() if org.tls_root else None
    ident = FabricIdentity.load(org.msp_id, org.cert, org.key)
    log = FabricLog(FabricGateway(org.gateway, ident, channel, chaincode, tls_root_pem=tls_root))
    try:
        try:
            tag = log.tag()
        except FabricError as exc:
            if "not initialized" not in str(exc):
                raise
            log.init(log_tag(chain_id))
            return
        if tag != log_tag(chain_id):
            raise LedgerError(
                f"chaincode {chaincode!r} on channel {channel!r} already keeps another consortium's log"
            )
    finally:
        log.close()


def _chainmaker_deploy(chain_id: str, cm: dict[str, str], admin_config: Path) -> None:
    """Deploy the consortium's ``ConfideLog`` on the ChainMaker chain (bound to its tag)."""
    from ..ledger.chainmaker.log import ChainMakerError, ChainMakerLog
    from ..ledger.ordered_log import log_tag

    log = ChainMakerLog.deploy(admin_config, cm["contract_name"], log_tag(chain_id))
    try:
        if log.chain_id != cm["chain_id"]:
            raise ChainMakerError(
                f"{admin_config} reaches ChainMaker chain {log.chain_id!r}, not {cm['chain_id']!r}"
            )
    finally:
        log.close()
