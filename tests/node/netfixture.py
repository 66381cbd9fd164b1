"""A real local network for tests: orderer + org nodes as separate processes on loopback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from confide.crypto import load_identity
from confide.interfaces.client import Client
from confide.node.consortium import OrgEntry, init_consortium

ORGS = (OrgEntry("bank", "Bank"), OrgEntry("tax", "Tax Bureau"), OrgEntry("power", "Power Co."))


def free_port_block(n: int) -> int:
    """A base port with n free consecutive ports (best effort)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + n >= 65535:
            continue
        ok = True
        for p in range(base, base + n):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free port block")


@dataclass
class Network:
    root: Path
    base_port: int
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def url(self, name: str) -> str:
        if name == "orderer":
            return f"http://127.0.0.1:{self.base_port}"
        return f"http://127.0.0.1:{self.base_port + 1 + [o.id for o in ORGS].index(name)}"

    def start(self, name: str) -> None:
        folder = self.root / name
        cmd = "orderer" if name == "orderer" else "node"
        log = (self.root / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "confide", cmd, "start", "--dir", str(folder), "--log-level", "warning"],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        self.wait_healthy(name)

    def wait_healthy(self, name: str, timeout_s: float = 30.0) -> None:
        path = "/v1/health"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.procs[name].poll() is not None:
                raise RuntimeError(f"{name} exited: {(self.root / f'{name}.log').read_text()[-2000:]}")
            try:
                if httpx.get(self.url(name) + path, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{name} did not become healthy")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        p = self.procs.pop(name)
        p.send_signal(sig)
        p.wait(timeout=20)

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.kill(name, signal.SIGTERM)

    def client(self, org: str, key: str = "admin", node: str | None = None) -> Client:
        ident = load_identity(self.root / org / "keys" / f"{key}.pem")
        return Client(self.url(node or org), ident)

    def health(self, org: str) -> dict[str, object]:
        return dict(httpx.get(self.url(org) + "/v1/health", timeout=5).json())


def start_network(root: Path, database_url: str | None = None) -> Network:
    base = free_port_block(1 + len(ORGS))
    init_consortium(root, ORGS, chain_id="net-test", base_port=base, database_url=database_url)
    net = Network(root, base)
    net.start("orderer")
    for o in ORGS:
        net.start(o.id)
    return net


def node_config(root: Path, org: str) -> dict[str, object]:
    return dict(json.loads((root / org / "node.json").read_text()))
