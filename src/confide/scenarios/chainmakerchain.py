"""A local ChainMaker stand-in for demos and tests: the protocol-level stand-in node
(``ledger/chainmaker/standin.py``) in ChainMaker's own venv (``.chainmaker-venv``; ``make
chainmaker-env`` makes it), on a free loopback port. At start-up it writes, under ``workdir``, a CA
and client, admin and node certificates per org (ChainMaker's ``crypto-config`` layout) and one
``sdk_config.yml`` per org, plus an admin one that can deploy contracts. No ChainMaker network runs
here: see docs/ledger-chainmaker.md for what the stand-in is and is not."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..ledger.chainmaker.log import ChainMakerLog, chainmaker_python, require_chainmaker
from .localnet import free_port_block, stop_process

__all__ = ["DEFAULT_ORGS", "STANDIN", "ChainMakerNet", "chainmaker_standin"]

STANDIN = Path(__file__).resolve().parents[1] / "ledger" / "chainmaker" / "standin.py"
DEFAULT_ORGS = ("wx-org1.chainmaker.org", "wx-org2.chainmaker.org", "wx-org3.chainmaker.org")


@dataclass
class ChainMakerNet:
    root: Path
    chain_id: str
    endpoint: str  # the stand-in node's RPC address (mutual TLS)
    orgs: list[str]
    configs: dict[str, Path]  # org id -> that org's client sdk_config.yml
    admin_config: Path  # org 1's admin, with every org's admin as an endorser (deploys contracts)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def sdk_config(self, org_index: int) -> Path:
        """The ``sdk_config.yml`` of org ``org_index`` (0-based) client: what its node.json names."""
        return self.configs[self.orgs[org_index]]

    def deploy(self, contract_name: str, tag: bytes, timeout_s: float = 60.0) -> ChainMakerLog:
        """Deploy a ``ConfideLog`` named ``contract_name`` bound to ``tag``, as the orgs' admins."""
        return ChainMakerLog.deploy(self.admin_config, contract_name, tag, timeout_s=timeout_s)

    def stop(self) -> None:
        for p in reversed(self.procs):
            stop_process(p)
        self.procs.clear()


def _wait_ready(proc: subprocess.Popen[bytes], root: Path, log: Path, timeout_s: float) -> dict[str, object]:
    ready = root / "ready.json"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready.exists():
            doc: dict[str, object] = json.loads(ready.read_text())
            return doc
        if proc.poll() is not None:
            raise RuntimeError(
                f"the ChainMaker stand-in exited (code {proc.returncode}); see {log}:\n"
                f"{log.read_text(errors='replace')[-2000:]}"
            )
        time.sleep(0.05)
    raise RuntimeError(f"the ChainMaker stand-in did not start in {timeout_s:.0f} s; see {log}")


@contextmanager
def chainmaker_standin(
    workdir: Path,
    *,
    orgs: Sequence[str] = DEFAULT_ORGS,
    chain_id: str = "chain1",
    start_ms: int | None = None,
    block_interval_ms: int = 20,
) -> Iterator[ChainMakerNet]:
    """A stand-in ChainMaker node for the ``with`` block. ``start_ms``: the chain's block clock starts
    there (then runs with the wall clock), so txs signed with a test's fake clock are fresh in its
    blocks; the SDK's own request timestamps are still checked against the wall clock."""
    python = chainmaker_python()
    require_chainmaker(python)
    root = workdir.resolve()
    root.mkdir(parents=True, exist_ok=True)
    (root / "ready.json").unlink(missing_ok=True)
    endpoint = f"127.0.0.1:{free_port_block(1)}"
    config = {
        "root": str(root),
        "listen": endpoint,
        "chain_id": chain_id,
        "orgs": list(orgs),
        "start_ms": start_ms,
        "block_interval_ms": block_interval_ms,
    }
    (root / "standin.json").write_text(json.dumps(config, indent=2))
    log = root / "standin.log"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [str(python), "-I", str(STANDIN), str(root / "standin.json")],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    net: ChainMakerNet | None = None
    try:
        ready = _wait_ready(proc, root, log, 60.0)
        configs = ready["sdk_configs"]
        assert isinstance(configs, dict)
        net = ChainMakerNet(
            root,
            chain_id,
            endpoint,
            list(orgs),
            {str(o): Path(str(p)) for o, p in configs.items()},
            Path(str(ready["admin_sdk_config"])),
            [proc],
        )
        yield net
    finally:
        if net is not None:
            net.stop()
        else:
            stop_process(proc)
