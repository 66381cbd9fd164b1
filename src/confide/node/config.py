"""Node configuration: one folder per org, holding ``node.json`` and its keys.

``confide consortium init`` writes the folders; ``confide node start --dir``
reads one. Paths in ``node.json`` are relative to its folder. Environment
variables ``CONFIDE_NODE_<FIELD>`` override the file (e.g. a PostgreSQL URL).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ConfigError", "NodeConfig", "load_node_config"]


class ConfigError(Exception):
    """The node folder or its node.json is missing or invalid."""


class NodeConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONFIDE_NODE_", extra="forbid")

    org: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    host: str = "127.0.0.1"
    port: int = Field(ge=1, le=65535)
    orderer_url: str
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
        default_factory=list, description="URLs the node POSTs scheduled runs' events to (signed JSON)"
    )

    @property
    def url(self) -> str:
        scheme = "https" if self.tls_cert else "http"
        return f"{scheme}://{self.host}:{self.port}"


def load_node_config(folder: str | Path) -> NodeConfig:
    d = Path(folder).resolve()
    path = d / "node.json"
    try:
        raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} not found; create node folders with 'confide consortium init'") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not JSON: {exc}") from None
    for key in ("data_dir", "node_key", "genesis", "tls_cert", "ca_bundle", "tee_dir", "runtime_build"):
        if key in raw and not Path(raw[key]).is_absolute():
            raw[key] = str(d / raw[key])
    url = raw.get("database_url", "")
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        raw["database_url"] = f"sqlite:///{d / url[len('sqlite:///') :]}"
    try:
        return NodeConfig(**raw)
    except ValidationError as exc:
        raise ConfigError(f"{path} is invalid:\n{exc}") from None
