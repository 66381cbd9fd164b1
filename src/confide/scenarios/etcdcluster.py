"""A local etcd cluster for demos and tests: one member per org (Debian's etcd-server, which
``make test`` installs), each on its own loopback ports, with short Raft timeouts so a lost member is
noticed in about half a second. Members can be stopped and started again (same data dir)."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from .localnet import free_port_block, stop_process

__all__ = ["EtcdCluster", "etcd_cluster"]


@dataclass
class EtcdCluster:
    root: Path
    names: list[str]
    client: list[int]
    peer: list[int]
    procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    def url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.client[i]}"

    @property
    def urls(self) -> list[str]:
        return [self.url(i) for i in range(len(self.names))]

    def start(self, i: int, timeout_s: float = 30.0) -> None:
        cluster = ",".join(f"{n}=http://127.0.0.1:{p}" for n, p in zip(self.names, self.peer, strict=True))
        args = [
            str(shutil.which("etcd") or "etcd"),
            "--name", self.names[i],
            "--data-dir", str(self.root / self.names[i]),
            "--listen-client-urls", self.url(i),
            "--advertise-client-urls", self.url(i),
            "--listen-peer-urls", f"http://127.0.0.1:{self.peer[i]}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peer[i]}",
            "--initial-cluster", cluster,
            "--initial-cluster-token", "confide-test",
            "--initial-cluster-state", "new",
            "--heartbeat-interval", "50",
            "--election-timeout", "500",
        ]  # fmt: skip
        log = (self.root / f"{self.names[i]}.log").open("ab")
        self.procs[i] = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)

    def wait_healthy(self, i: int, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url(i) + "/health", timeout=2).json().get("health") == "true":
                    return
            except (httpx.HTTPError, ValueError):
                pass
            if self.procs[i].poll() is not None:
                raise RuntimeError(f"etcd member {self.names[i]} exited; see {self.root}/{self.names[i]}.log")
            time.sleep(0.1)
        raise RuntimeError(f"etcd member {self.names[i]} not healthy in {timeout_s} s")

    def status(self, i: int) -> dict[str, str]:
        """This member's id and the leader's id, as it sees them."""
        out = httpx.post(self.url(i) + "/v3/maintenance/status", json={}, timeout=5).json()
        return {"member": str(out["header"]["member_id"]), "leader": str(out["leader"])}

    def leader(self) -> int:
        ids = {self.status(i)["member"]: i for i in self.procs}
        return ids[self.status(next(iter(self.procs)))["leader"]]

    def make_leader(self, i: int, timeout_s: float = 10.0) -> None:
        """Transfer the Raft leadership to member ``i`` (so stopping it forces an election)."""
        target = self.status(i)["member"]
        deadline = time.monotonic() + timeout_s
        while self.leader() != i:
            if time.monotonic() > deadline:
                raise RuntimeError(f"member {self.names[i]} did not become the leader")
            httpx.post(self.url(self.leader()) + "/v3/maintenance/transfer-leadership",
                       json={"targetID": target}, timeout=5)  # fmt: skip
            time.sleep(0.1)

    def stop(self, i: int) -> None:
        stop_process(self.procs.pop(i))

    def stop_all(self) -> None:
        for i in list(self.procs):
            self.stop(i)


@contextmanager
def etcd_cluster(root: Path, members: int = 3) -> Iterator[EtcdCluster]:
    if shutil.which("etcd") is None:
        raise RuntimeError("etcd is missing: run 'make etcd' (installs Debian's etcd-server)")
    root.mkdir(parents=True, exist_ok=True)
    base = free_port_block(2 * members)
    ports = list(range(base, base + 2 * members))
    c = EtcdCluster(root, [f"m{i}" for i in range(members)], ports[:members], ports[members:])
    try:
        for i in range(members):
            c.start(i)
        for i in range(members):
            c.wait_healthy(i)
        yield c
    finally:
        c.stop_all()
