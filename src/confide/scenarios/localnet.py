"""Run a whole consortium on loopback: the ordering service and one node per org, as processes.

Used by ``confide demo network`` (``make demo``) and the multi-process tests.
Each process logs to ``<root>/<name>.log``; :meth:`LocalNetwork.stop_all`
sends SIGTERM and waits, so nothing is left running.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ..crypto import load_identity
from ..crypto.tls import client_context
from ..interfaces.client import Client
from ..node.consortium import FabricOrg, OrgEntry, init_consortium

__all__ = ["LocalNetwork", "free_port_block", "start_local_network"]


def _ephemeral_range() -> tuple[int, int]:
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def free_port_block(n: int) -> int:
    """A base port such that base .. base+n-1 are free on 127.0.0.1 right now, chosen *below* the
    kernel's ephemeral range: ports handed out for outgoing connections (every node, etcd member
    and test client makes many) can never take one between this check and the server's bind."""
    lo, _ = _ephemeral_range()
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(10_000, max(10_001, lo - n))
        if all(_free(p) for p in range(base, base + n)):
            return base
    raise RuntimeError("could not find free ports on 127.0.0.1")


def stop_process(p: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    """Stop a helper process (etcd member, ganache, chaincode server, stand-in): SIGTERM, then kill."""
    p.terminate()
    try:
        p.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class LocalNetwork:
    root: Path
    base_port: int
    orgs: tuple[str, ...]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ledger: str = "embedded"  # evm, etcd: no orderer process; every node follows the log

    @property
    def bundle(self) -> Path | None:
        b = self.root / "certs" / "bundle.pem"
        return b if b.exists() else None

    def verify(self) -> ssl.SSLContext | bool:
        return client_context(self.bundle) if self.bundle else True

    def console_url(self, org: str) -> str:
        """The org node's web console (http on loopback)."""
        return f"http://127.0.0.1:{self.base_port + 1 + len(self.orgs) + self.orgs.index(org)}/console/"

    def url(self, name: str) -> str:
        offset = 0 if name == "orderer" else 1 + self.orgs.index(name)
        scheme = "https" if self.bundle else "http"
        return f"{scheme}://127.0.0.1:{self.base_port + offset}"

    def start(self, name: str, timeout_s: float = 60.0) -> None:
        cmd = "orderer" if name == "orderer" else "node"
        log = (self.root / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "confide",
                cmd,
                "start",
                "--dir",
                str(self.root / name),
                "--log-level",
                "warning",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.wait_healthy(name, timeout_s)

    def wait_healthy(self, name: str, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.procs[name].poll() is not None:
                tail = (self.root / f"{name}.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{name} exited during start-up; its log ends with:\n{tail}")
            try:
                if (
                    httpx.get(self.url(name) + "/v1/health", timeout=1, verify=self.verify()).status_code
                    == 200
                ):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{name} did not answer on {self.url(name)} within {timeout_s:.0f} s")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        p = self.procs.pop(name)
        p.send_signal(sig)
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

    def stop_all(self) -> None:
        for name in reversed(list(self.procs)):
            self.kill(name, signal.SIGTERM)

    def client(self, org: str, key: str = "admin", node: str | None = None) -> Client:
        ident = load_identity(self.root / org / "keys" / f"{key}.pem")
        return Client(self.url(node or org), ident, ca_bundle=self.bundle)

    def health(self, name: str) -> dict[str, Any]:
        return dict(httpx.get(self.url(name) + "/v1/health", timeout=5, verify=self.verify()).json())

    def sync(self, timeout_s: float = 30.0) -> int:
        """Wait until every node has applied the orderer's head (evm: the highest node's height);
        return that height."""
        if self.ledger != "embedded":
            head = max(int(self.health(o)["height"]) for o in self.orgs)
        else:
            head = int(self.health("orderer")["height"])
        deadline = time.monotonic() + timeout_s
        while any(self.health(o)["height"] < head for o in self.orgs):
            if time.monotonic() > deadline:
                raise RuntimeError("nodes did not catch up with the orderer in time")
            time.sleep(0.05)
        return head


def start_local_network(
    root: Path,
    orgs: Sequence[OrgEntry],
    *,
    chain_id: str = "confide-local",
    database_url: str | None = None,
    base_port: int | None = None,
    say: Any = None,
    ledger: str = "embedded",
    evm_rpc_url: str | None = None,
    evm_funder_key: str | None = None,
    etcd_endpoints: Sequence[str] = (),
    fabric_orgs: Sequence[FabricOrg] = (),
    fabric_chaincode: str = "confide-log",
    chainmaker_configs: Sequence[Path] = (),
    chainmaker_admin_config: Path | None = None,
    chainmaker_chain_id: str = "chain1",
) -> LocalNetwork:
    """``ledger="evm"``: the consortium's log is deployed on the EVM chain at ``evm_rpc_url`` (by the
    funded account ``evm_funder_key``) and no orderer process runs."""
    base = base_port if base_port is not None else free_port_block(1 + 2 * len(orgs))  # + consoles
    init_consortium(
        root,
        orgs,
        chain_id=chain_id,
        base_port=base,
        database_url=database_url,
        ledger=ledger,
        evm_rpc_url=evm_rpc_url,
        evm_funder_key=evm_funder_key,
        etcd_endpoints=etcd_endpoints,
        fabric_orgs=fabric_orgs,
        fabric_chaincode=fabric_chaincode,
        chainmaker_configs=chainmaker_configs,
        chainmaker_admin_config=chainmaker_admin_config,
        chainmaker_chain_id=chainmaker_chain_id,
    )
    net = LocalNetwork(root, base, tuple(o.id for o in orgs), ledger=ledger)
    try:
        for name in ("orderer", *net.orgs) if ledger == "embedded" else net.orgs:
            if say:
                say(f"starting {name} on {net.url(name)}")
            net.start(name)
    except BaseException:
        net.stop_all()
        raise
    return net
