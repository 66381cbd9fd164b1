"""Node configuration: one folder per org, holding ``node.json`` and its keys.

``confide consortium init`` writes the folders; ``confide node start --dir``
reads one. Paths in ``node.json`` are relative to its folder. Environment
variables ``CONFIDE_NODE_<FIELD>`` override the file (e.g. a PostgreSQL URL).
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ConfigError", "NodeConfig", "load_node_config"]


class ConfigError(Exception):
    """The node folder or its node.json is missing or invalid."""


class NodeConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONFIDE_NODE_", extra="forbid")

    org: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    host: str = "127.0.0.1"
    port: int = Field(ge=1, le=65535)
    orderer_url: str | None = Field(default=None, description="the ordering service (embedded ledger)")
    # An evm consortium (genesis ledger.backend = evm): this node's EVM endpoint and its gas account
    evm_rpc_url: str | None = None
    evm_account_key: Path | None = Field(default=None, description="file holding the 0x... private key")
    # An etcd consortium (ledger.backend = etcd): the cluster's client URLs, this org's member first
    etcd_endpoints: list[str] = Field(default_factory=list)
    # A fabric consortium (ledger.backend = fabric): the gateway peer and this org's Fabric identity
    fabric_gateway: str | None = Field(default=None, description="host:port of the Fabric Gateway peer")
    fabric_msp_id: str | None = None
    fabric_cert: Path | None = Field(default=None, description="the client certificate its Fabric CA issued")
    fabric_key: Path | None = None
    fabric_tls_root: Path | None = Field(default=None, description="the gateway's TLS CA (unset: plaintext)")
    # A chainmaker consortium (ledger.backend = chainmaker): this org's SDK config (its client
    # certificate and key, the nodes it talks to), read by the SDK worker in .chainmaker-venv
    chainmaker_sdk_config: Path | None = Field(default=None, description="this org's sdk_config.yml")
    database_url: str
    data_dir: Path
    node_key: Path
    genesis: Path
    peers: dict[str, str] = Field(default_factory=dict, description="org id -> node base URL")
    environment: Literal["development", "production"] = "development"
    poll_ms: int = Field(default=100, ge=5, le=60_000)
    tls_cert: Path | None = Field(default=None, description="this node's certificate (made from node_key)")
    ca_bundle: Path | None = Field(default=None, description="consortium certificates, checked vs genesis")
    tee_dir: Path | None = Field(default=None, description="enclave-host platform files; None: not a host")
    runtime_build: Path | None = Field(default=None, description="the signed enclave runtime build")
    webhooks: list[str] = Field(
        default_factory=list, description="URLs the node POSTs run and release events to (signed JSON)"
    )
    # The web console (and the same API) for browsers, on a listener of its own: browsers do not
    # accept the Ed25519 certificates of the node links. Plain http only on a loopback address;
    # anywhere else give a certificate browsers accept (ECDSA P-256 or RSA) and its key.
    console_port: int | None = Field(default=None, ge=1, le=65535, description="None: no console")
    console_host: str = "127.0.0.1"
    console_tls_cert: Path | None = None
    console_tls_key: Path | None = None

    @model_validator(mode="after")
    def _console_safe(self) -> NodeConfig:
        if (self.console_tls_cert is None) != (self.console_tls_key is None):
            raise ValueError("console_tls_cert and console_tls_key: give both or neither")
        if (
            self.console_port is not None
            and self.console_tls_cert is None
            and not _loopback(self.console_host)
        ):
            raise ValueError(
                f"console_host {self.console_host!r}: the console over plain http listens on a loopback "
                "address only; give console_tls_cert and console_tls_key (ECDSA P-256 or RSA) to serve it "
                "to other machines"
            )
        return self

    @property
    def console_url(self) -> str | None:
        if self.console_port is None:
            return None
        scheme = "https" if self.console_tls_cert else "http"
        return f"{scheme}://{self.console_host}:{self.console_port}/console/"

    @property
    def url(self) -> str:
        scheme = "https" if self.tls_cert else "http"
        return f"{scheme}://{self.host}:{self.port}"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_node_config(folder: str | Path) -> NodeConfig:
    d = Path(folder).resolve()
    path = d / "node.json"
    try:
        raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} not found; create node folders with 'confide consortium init'") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not JSON: {exc}") from None
    for key in (
        "data_dir",
        "node_key",
        "genesis",
        "tls_cert",
        "ca_bundle",
        "tee_dir",
        "runtime_build",
        "console_tls_cert",
        "console_tls_key",
        "evm_account_key",
        "fabric_cert",
        "fabric_key",
        "fabric_tls_root",
        "chainmaker_sdk_config",
    ):
        if key in raw and not Path(raw[key]).is_absolute():
            raw[key] = str(d / raw[key])
    url = raw.get("database_url", "")
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        raw["database_url"] = f"sqlite:///{d / url[len('sqlite:///') :]}"
    try:
        return NodeConfig(**raw)
    except ValidationError as exc:
        raise ConfigError(f"{path} is invalid:\n{exc}") from None
