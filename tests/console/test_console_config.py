"""The console's listener: plain http only on loopback; elsewhere a certificate browsers accept."""

from __future__ import annotations

from typing import Any

import pytest

from confide.node.config import NodeConfig

BASE: dict[str, Any] = {
    "org": "bank",
    "port": 8101,
    "orderer_url": "http://127.0.0.1:8100",
    "database_url": "sqlite:///x.sqlite",
    "data_dir": "data",
    "node_key": "keys/node.pem",
    "genesis": "genesis.json",
}


def test_plain_http_console_only_on_loopback() -> None:
    ok = NodeConfig(**BASE, console_port=8104)
    assert ok.console_url == "http://127.0.0.1:8104/console/"
    assert NodeConfig(**BASE, console_port=8104, console_host="::1").console_url is not None
    with pytest.raises(ValueError, match="loopback address only"):
        NodeConfig(**BASE, console_port=8104, console_host="0.0.0.0")
    tls = NodeConfig(
        **BASE, console_port=443, console_host="0.0.0.0", console_tls_cert="c.pem", console_tls_key="k.pem"
    )
    assert tls.console_url == "https://0.0.0.0:443/console/"
    with pytest.raises(ValueError, match="give both or neither"):
        NodeConfig(**BASE, console_port=443, console_tls_cert="c.pem")
    assert NodeConfig(**BASE).console_url is None  # no console unless configured
