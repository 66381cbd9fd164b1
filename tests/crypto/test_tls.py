"""TLS certificates made from ledger keys: pinning to genesis keys, refusal of anything else."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from confide.crypto import Identity, InvalidKey
from confide.crypto.tls import (
    TlsUnsupported,
    check_bundle,
    check_own_certificate,
    client_context,
    make_certificate,
)
from confide.node.consortium import OrgEntry, init_consortium
from confide.scenarios.localnet import free_port_block

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _cert(tmp: Path, name: str, ident: Identity) -> Path:
    p = tmp / f"{name}.pem"
    p.write_bytes(make_certificate(ident, name, not_before=T0))
    return p


def test_bundle_must_hold_only_genesis_keys(tmp_path: Path) -> None:
    node, stranger = Identity.generate(), Identity.generate()
    good = _cert(tmp_path, "bank", node)
    check_bundle(good, [node.public_hex])
    bad = tmp_path / "bundle.pem"
    bad.write_bytes(good.read_bytes() + _cert(tmp_path, "evil", stranger).read_bytes())
    with pytest.raises(InvalidKey, match="evil"):
        check_bundle(bad, [node.public_hex])
    with pytest.raises(InvalidKey):
        check_own_certificate(good, stranger)


def test_gm_keys_are_refused_not_downgraded(tmp_path: Path) -> None:
    pytest.importorskip("tongsuopy")
    with pytest.raises(TlsUnsupported):
        make_certificate(Identity.generate("gm"), "bank", not_before=T0)


def _serve(tmp: Path, ident: Identity, cert: Path, port: int) -> uvicorn.Server:
    app = FastAPI()
    app.get("/ping")(lambda: {"pong": True})
    ident.save(tmp / "key.pem")
    cfg = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        ssl_certfile=str(cert),
        ssl_keyfile=str(tmp / "key.pem"),
    )
    server = uvicorn.Server(cfg)
    threading.Thread(target=server.run, daemon=True).start()
    for _ in range(100):
        if server.started:
            break
        time.sleep(0.05)
    return server


def test_client_trusts_only_the_pinned_certificate(tmp_path: Path) -> None:
    node, impostor = Identity.generate(), Identity.generate()
    cert = _cert(tmp_path, "bank", node)
    port = free_port_block(1)
    server = _serve(tmp_path, node, cert, port)
    try:
        url = f"https://127.0.0.1:{port}/ping"
        assert httpx.get(url, verify=client_context(cert)).json() == {"pong": True}
        with pytest.raises(httpx.ConnectError):
            httpx.get(url)  # system trust store does not know consortium certificates
        with pytest.raises(httpx.ConnectError):
            httpx.get(url, verify=client_context(_cert(tmp_path, "bank2", impostor)))
    finally:
        server.should_exit = True


def test_consortium_init_tls_and_plain(tmp_path: Path) -> None:
    orgs = [OrgEntry("bank", "Bank"), OrgEntry("tax", "Tax")]
    init_consortium(tmp_path / "tls", orgs, base_port=9100)
    node = json.loads((tmp_path / "tls" / "bank" / "node.json").read_text())
    assert node["orderer_url"].startswith("https://") and node["tls_cert"] == "../certs/bank.pem"
    genesis = json.loads((tmp_path / "tls" / "genesis.json").read_text())
    keys = [genesis["orderer_public_key"], *(o["node_public_key"] for o in genesis["orgs"])]
    check_bundle(tmp_path / "tls" / "certs" / "bundle.pem", keys)
    init_consortium(tmp_path / "plain", orgs, base_port=9100, tls=False)
    plain = json.loads((tmp_path / "plain" / "bank" / "node.json").read_text())
    assert plain["orderer_url"].startswith("http://") and "tls_cert" not in plain
