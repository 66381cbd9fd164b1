"""A local Fabric stand-in for demos and tests: the project's real chaincode as a chaincode server
(``chain/fabric/chaincode``, fabric-shim from its package-lock; ``make fabric`` installs it) and the
Gateway stand-in peer (``ledger/fabric/standin.py``) that drives it, on loopback ports; one CA per
org and a client certificate per org, written under ``root``. See docs/ledger-fabric.md for what the
stand-in is and is not."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..ledger.fabric.gateway import FabricGateway
from ..ledger.fabric.msp import FabricIdentity, issue_ca, issue_cert, key_pem
from .localnet import free_port_block, stop_process

__all__ = ["CHAINCODE_DIR", "FabricNet", "fabric_network"]

CHAINCODE_DIR = Path(
    os.environ.get(
        "CONFIDE_FABRIC_CHAINCODE", Path(__file__).resolve().parents[3] / "chain" / "fabric" / "chaincode"
    )
)
PEER_MSP = "PeerOrgMSP"


@dataclass
class FabricNet:
    root: Path
    endpoint: str  # the Gateway stand-in's address
    channel: str
    clients: dict[str, tuple[Path, Path]]  # msp id -> (cert, key) of that org's client identity
    tls_root: Path | None = None  # the gateway's TLS CA (None: plaintext)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def identity(self, msp_id: str) -> FabricIdentity:
        cert, key = self.clients[msp_id]
        return FabricIdentity.load(msp_id, cert, key)

    @property
    def tls_root_pem(self) -> bytes | None:
        return self.tls_root.read_bytes() if self.tls_root else None

    def gateway(self, msp_id: str, chaincode: str) -> FabricGateway:
        """A Gateway client of ``msp_id`` for ``chaincode`` on this network's channel (TLS if served)."""
        return FabricGateway(
            self.endpoint, self.identity(msp_id), self.channel, chaincode, tls_root_pem=self.tls_root_pem
        )

    def stop(self) -> None:
        for p in reversed(self.procs):
            stop_process(p)
        self.procs.clear()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def _wait_ready(
    proc: subprocess.Popen[bytes], log: Path, what: str, probe: str | None, timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"the {what} exited (code {proc.returncode}); see {log}:\n{log.read_text()[-2000:]}"
            )
        text = log.read_text(errors="replace")
        if probe is not None and probe in text:
            return
        time.sleep(0.05)
    raise RuntimeError(f"the {what} did not start in {timeout_s} s; see {log}")


@contextmanager
def fabric_network(
    root: Path,
    orgs: Sequence[str],
    *,
    channel: str = "confide",
    chaincodes: Sequence[str] = ("*",),
    tls: bool = False,
) -> Iterator[FabricNet]:
    """``orgs``: the client MSP ids (one CA each); ``chaincodes``: the chaincode names defined on the
    channel (``*``: any, each its own namespace — one fresh log per test); ``tls``: serve the Gateway
    over TLS (its own TLS CA, written as ``tls-ca.pem``)."""
    node = shutil.which("node")
    server = CHAINCODE_DIR / "node_modules" / ".bin" / "fabric-chaincode-node"
    if node is None or not server.exists():
        raise RuntimeError(
            "the Fabric chaincode server is missing: run 'make fabric' (needs Node.js and npm)"
        )
    root.mkdir(parents=True, exist_ok=True)
    msps: dict[str, str] = {}
    clients: dict[str, tuple[Path, Path]] = {}
    for msp in [*orgs, PEER_MSP]:
        ca_pem, ca_key = issue_ca(msp)
        msps[msp] = str(_write(root / f"{msp}-ca.pem", ca_pem))
        who = "peer0" if msp == PEER_MSP else "client"
        cert, key = issue_cert(ca_pem, ca_key, f"{who}.{msp}", msp)
        clients[msp] = (
            _write(root / f"{msp}-{who}.pem", cert),
            _write(root / f"{msp}-{who}-key.pem", key_pem(key)),
        )
    base = free_port_block(2)
    cc_addr, gw_addr = f"127.0.0.1:{base}", f"127.0.0.1:{base + 1}"
    peer_cert, peer_key = clients.pop(PEER_MSP)
    config = {
        "listen": gw_addr,
        "channel": channel,
        "chaincodes": list(chaincodes),
        "chaincode_address": cc_addr,
        "peer": {"msp_id": PEER_MSP, "cert": str(peer_cert), "key": str(peer_key)},
        "msps": msps,
    }
    tls_root = None
    if tls:
        tls_ca, tls_ca_key = issue_ca("tlsca")
        tls_root = _write(root / "tls-ca.pem", tls_ca)
        cert, key = issue_cert(tls_ca, tls_ca_key, "peer0", PEER_MSP, hosts=("127.0.0.1", "localhost"))
        config["tls"] = {
            "cert": str(_write(root / "peer0-tls.pem", cert)),
            "key": str(_write(root / "peer0-tls-key.pem", key_pem(key))),
        }
    (root / "standin.json").write_text(json.dumps(config, indent=2))
    net = FabricNet(root, gw_addr, channel, clients, tls_root)
    try:
        cc_log = root / "chaincode.log"
        cc = subprocess.Popen(
            [node, str(server), "server", "--chaincode-address", cc_addr, "--chaincode-id", "confide-log:1"],
            cwd=CHAINCODE_DIR,
            stdout=cc_log.open("ab"),
            stderr=subprocess.STDOUT,
            env={**os.environ, "CORE_CHAINCODE_LOGGING_LEVEL": "warning"},
        )
        net.procs.append(cc)
        time.sleep(0.2)
        peer_log = root / "standin.log"
        peer = subprocess.Popen(
            [sys.executable, "-m", "confide.ledger.fabric.standin", str(root / "standin.json")],
            stdout=peer_log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        net.procs.append(peer)
        _wait_ready(peer, peer_log, "Fabric gateway stand-in", "ready", 60.0)
        yield net
    finally:
        net.stop()
