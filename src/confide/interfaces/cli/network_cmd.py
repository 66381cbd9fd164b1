"""``confide consortium init``, ``confide orderer start``, ``confide node start``."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import typer

from ._common import console, fail, friendly

consortium_app = typer.Typer(
    help="Create a consortium: genesis, orderer and one folder per org node.", no_args_is_help=True
)
orderer_app = typer.Typer(help="Run the ordering service.", no_args_is_help=True)
node_app = typer.Typer(help="Run an org node.", no_args_is_help=True)


@consortium_app.command("init")
@friendly
def consortium_init(
    directory: Path = typer.Option(..., "--dir", "-d", help="New consortium folder."),
    org: list[str] = typer.Option(
        [], "--org", help="Member org as id:Name (repeat). Default: bank, tax, power."
    ),
    chain_id: str = typer.Option("confide-local", help="Chain id."),
    suite: str = typer.Option("default", help="Crypto suite: default or gm."),
    base_port: int = typer.Option(8100, help="Orderer port; nodes take the next ports in order."),
    database_url: str | None = typer.Option(
        None, help="Node database URL, may contain {org}. Default SQLite."
    ),
    tls: bool = typer.Option(True, help="https everywhere, certificates made from the ledger keys."),
    ledger: str = typer.Option(
        "embedded",
        help="embedded (solo orderer), evm (an EVM chain orders), etcd (an etcd cluster does) or fabric "
        "(a Fabric channel does, through the ConfideLog chaincode) or chainmaker (a ChainMaker chain does).",
    ),
    evm_rpc: str | None = typer.Option(None, help="evm: the chain's JSON-RPC endpoint."),
    etcd_endpoint: list[str] = typer.Option(
        [], help="etcd: one member's client URL per org, in the orgs' order (repeat)."
    ),
    evm_key: str | None = typer.Option(
        None, envvar="CONFIDE_EVM_KEY", help="evm: a funded account's 0x private key (deploys the log)."
    ),
    evm_confirmations: int = typer.Option(
        0, min=0, max=1000, help="evm: blocks deep before a block is read."
    ),
    fabric_gateway: list[str] = typer.Option(
        [], help="fabric: host:port of each org's gateway peer, in the orgs' order (one: shared by all)."
    ),
    fabric_identity: list[str] = typer.Option(
        [], help="fabric: each org's client identity as MSPID:CERT.pem:KEY.pem, in the orgs' order (repeat)."
    ),
    fabric_tls_root: Path | None = typer.Option(
        None, help="fabric: the gateway peers' TLS CA certificate (unset: plaintext, loopback only)."
    ),
    fabric_channel: str = typer.Option("confide", help="fabric: the channel the chaincode is committed on."),
    fabric_chaincode: str = typer.Option("confide-log", help="fabric: the ConfideLog chaincode's name."),
    chainmaker_config: list[Path] = typer.Option(
        [], help="chainmaker: each org's sdk_config.yml, in the orgs' order (repeat)."
    ),
    chainmaker_admin_config: Path | None = typer.Option(
        None, help="chainmaker: an sdk_config.yml whose endorsers may deploy contracts (deploys the log)."
    ),
    chainmaker_chain_id: str = typer.Option("chain1", help="chainmaker: the ChainMaker chain id."),
    chainmaker_contract: str = typer.Option("confide_log", help="chainmaker: the log contract's name."),
) -> None:
    """Write genesis.json, the orderer folder and one folder per org (keys, node.json, data/)."""
    from ...node.consortium import FabricOrg, OrgEntry, init_consortium
    from ...scenarios.foundation import DEMO_ORGS

    entries = [OrgEntry(o.id, o.name, o.credit_code) for o in DEMO_ORGS]
    if org:
        entries = []
        for item in org:
            oid, sep, name = item.partition(":")
            if not sep or not name:
                fail(f"--org {item!r} is not id:Name")
            entries.append(OrgEntry(oid, name))
    fabric_orgs = []
    if ledger == "fabric":
        if len(fabric_gateway) not in (1, len(entries)) or len(fabric_identity) != len(entries):
            fail("a fabric consortium needs --fabric-identity per org and --fabric-gateway once or per org")
        for i, item in enumerate(fabric_identity):
            parts = item.split(":")
            if len(parts) != 3 or not all(parts):
                fail(f"--fabric-identity {item!r} is not MSPID:CERT.pem:KEY.pem")
            gw = fabric_gateway[i if len(fabric_gateway) > 1 else 0]
            fabric_orgs.append(FabricOrg(gw, parts[0], Path(parts[1]), Path(parts[2]), fabric_tls_root))
    init_consortium(
        directory,
        entries,
        chain_id=chain_id,
        suite=suite,
        base_port=base_port,
        database_url=database_url,
        tls=tls,
        ledger=ledger,
        evm_rpc_url=evm_rpc,
        evm_funder_key=evm_key,
        evm_confirmations=evm_confirmations,
        etcd_endpoints=etcd_endpoint,
        fabric_orgs=fabric_orgs,
        fabric_channel=fabric_channel,
        fabric_chaincode=fabric_chaincode,
        chainmaker_configs=chainmaker_config,
        chainmaker_admin_config=chainmaker_admin_config,
        chainmaker_chain_id=chainmaker_chain_id,
        chainmaker_contract=chainmaker_contract,
    )
    where = {
        "embedded": f"orderer on port {base_port}",
        "evm": f"log on the EVM chain at {evm_rpc}",
        "etcd": f"log on the etcd cluster {', '.join(etcd_endpoint)}",
        "fabric": f"log chaincode {fabric_chaincode} on Fabric channel {fabric_channel}",
        "chainmaker": f"log contract {chainmaker_contract} on ChainMaker chain {chainmaker_chain_id}",
    }.get(ledger, ledger)
    console.print(
        f"consortium {chain_id} in {directory} ({ledger} ledger): {where}, nodes: "
        + ", ".join(f"{e.id} ({base_port + 1 + i})" for i, e in enumerate(entries))
    )


def _logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _serve(
    app: Any,
    host: str,
    port: int,
    log_level: str,
    cert: str | None,
    keyfile: str | None,
    *,
    console: Any = None,
) -> None:
    """uvicorn with TLS when a certificate is given; idle keep-alive links get 3 s to close on stop.
    ``console``: a second uvicorn server (the web console's listener), run in a thread beside the
    main one and stopped with it."""
    import threading

    import uvicorn

    thread = None
    if console is not None:
        thread = threading.Thread(target=console.run, daemon=True, name="console-listener")
        thread.start()
    try:
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level=log_level.lower(),
            timeout_graceful_shutdown=3,
            ssl_certfile=cert,
            ssl_keyfile=keyfile,
        )
    finally:
        if console is not None and thread is not None:
            console.should_exit = True
            thread.join(timeout=5)


@orderer_app.command("start")
@friendly
def orderer_start(
    directory: Path = typer.Option(..., "--dir", "-d", help="The orderer folder (holds orderer.json)."),
    log_level: str = typer.Option("info", help="debug, info, warning."),
) -> None:
    """Run the solo ordering service (HTTP) until interrupted."""
    from ...crypto import load_identity
    from ...ledger.embedded import EmbeddedBackend
    from ...ledger.embedded.service import create_orderer_app
    from ...ledger.genesis import load_genesis

    cfg_path = directory / "orderer.json"
    if not cfg_path.exists():
        fail(f"{cfg_path} not found", "create it with 'confide consortium init'")
    cfg = json.loads(cfg_path.read_text())
    genesis = load_genesis(directory / cfg["genesis"])
    key = load_identity(directory / cfg["key"], genesis.suite)
    backend = EmbeddedBackend(genesis=genesis, orderer_identity=key, path=directory / cfg["store"])
    _logging(log_level)
    console.print(
        f"ordering service for {genesis.chain_id} on {cfg['host']}:{cfg['port']} "
        f"(height {backend.head().height})"
    )
    app = create_orderer_app(backend, batch_ms=int(cfg.get("batch_ms", 20)))
    cert = keyfile = None
    if cfg.get("tls_cert"):
        from ...crypto.tls import check_bundle, check_own_certificate
        from ...ledger.genesis import genesis_tls_keys

        check_own_certificate(directory / cfg["tls_cert"], key)
        check_bundle(directory / cfg["ca_bundle"], genesis_tls_keys(genesis))
        cert, keyfile = str(directory / cfg["tls_cert"]), str(directory / cfg["key"])
    _serve(app, cfg["host"], int(cfg["port"]), log_level, cert, keyfile)


@node_app.command("start")
@friendly
def node_start(
    directory: Path = typer.Option(..., "--dir", "-d", help="The org's node folder (holds node.json)."),
    log_level: str = typer.Option("info", help="debug, info, warning."),
) -> None:
    """Run an org node: follow and verify the chain, serve the API, enforce grants."""
    from ...node.api import create_node_app
    from ...node.config import ConfigError, load_node_config
    from ...node.context import NodeContext

    try:
        cfg = load_node_config(directory)
    except ConfigError as exc:
        fail(str(exc))
        return
    _logging(log_level)
    try:
        ctx = NodeContext.open(cfg)
    except ConfigError as exc:
        fail(str(exc))
        return
    source = {
        "embedded": cfg.orderer_url,
        "evm": f"the EVM log at {cfg.evm_rpc_url}",
        "etcd": f"the etcd log at {', '.join(cfg.etcd_endpoints)}",
        "fabric": f"the Fabric channel {ctx.genesis.ledger.fabric.channel} via {cfg.fabric_gateway}",
        "chainmaker": f"the ChainMaker chain {ctx.genesis.ledger.chainmaker.chain_id}",
    }[ctx.genesis.ledger.backend]
    console.print(f"node {cfg.org} on {cfg.url}, following {source} from height {ctx.replica.height}")
    cert = str(cfg.tls_cert) if cfg.tls_cert is not None else None
    app = create_node_app(ctx)
    if cfg.console_port is not None:
        console.print(f"web console on {cfg.console_url}")
    _serve(
        app,
        cfg.host,
        cfg.port,
        log_level,
        cert,
        str(cfg.node_key) if cert else None,
        console=_console_server(app, cfg, log_level) if cfg.console_port is not None else None,
    )


def _console_server(app: Any, cfg: Any, log_level: str) -> Any:
    """The same app on the console's listener (no lifespan of its own: the main server runs it)."""
    import uvicorn

    ssl_cert = str(cfg.console_tls_cert) if cfg.console_tls_cert is not None else None
    ssl_key = str(cfg.console_tls_key) if cfg.console_tls_key is not None else None
    config = uvicorn.Config(
        app,
        host=cfg.console_host,
        port=cfg.console_port,
        log_level=log_level.lower(),
        lifespan="off",
        timeout_graceful_shutdown=3,
        ssl_certfile=ssl_cert,
        ssl_keyfile=ssl_key,
    )
    return uvicorn.Server(config)
