"""A credit-scenario network to use the console on (``python -m confide.console.stage``).

Starts the orderer and the bank's, the tax bureau's and the power company's nodes on loopback
(https), creates members with keys under each org's ``keys/``, writes the synthetic data and
registers the three datasets. The power company's and the bank's own datasets are granted to the
bank's analyst already; the tax bureau's is left for the console (apply, approve at two levels).
Prints each node's console address and the key file of each person, then waits for Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ..interfaces.client import Client
from ..scenarios.credit_demo import grant_datasets, start_credit_network
from ..scenarios.localnet import LocalNetwork
from ..scenarios.marketing_demo import MarketingDemo, start_marketing_network, start_marketing_with_stats

__all__ = ["KEYS", "MarketingStage", "Stage", "start_marketing_stage", "start_stage"]

# person -> (org, key file under <org>/keys/)
KEYS = {
    "analyst": ("bank", "analyst.pem"),
    "bank-owner": ("bank", "credit-owner.pem"),
    "tax-owner": ("tax", "collection-owner.pem"),
    "tax-admin": ("tax", "admin.pem"),
    "power-owner": ("power", "service-owner.pem"),
    "power-admin": ("power", "admin.pem"),
}
MARKETING_KEYS = {
    "analyst": ("bank", "analyst.pem"),
    "bank-owner": ("bank", "retail-owner.pem"),
    "telecom-owner": ("telecom", "mobile-owner.pem"),
}
PREGRANTED = ("power/service/consumption", "bank/credit/loans")


@dataclass
class Stage:
    """A running scenario network: its people's clients and key files, each org's console."""

    net: LocalNetwork
    people: dict[str, Client]
    keys: dict[str, tuple[str, str]] = field(default_factory=lambda: dict(KEYS))

    def console(self, org: str) -> str:
        return self.net.console_url(org)

    def key(self, person: str) -> Path:
        org, name = self.keys[person]
        return self.net.root / org / "keys" / name


def start_stage(workdir: Path, *, enterprises: int = 600, say: object = print) -> Stage:
    quiet = say if callable(say) else print
    net, people = start_credit_network(workdir, quiet, enterprises=enterprises)
    try:
        grant_datasets(net, people, quiet, PREGRANTED)
        net.sync()
    except BaseException:
        net.stop_all()
        raise
    return Stage(net, people)


@dataclass
class MarketingStage(Stage):
    """The marketing scenario's network, with its segment-statistics mpc run (``run`` of ``task``)
    done and released when started with ``runs``."""

    run: str = ""
    task: str = ""


def start_marketing_stage(workdir: Path, *, customers: int = 2000, runs: bool = True) -> MarketingStage:
    """With ``runs``: the psi and segment-statistics runs done (by the SDK) and released; without:
    only the datasets granted, for the console to create and run the tasks."""
    if not runs:
        net, people, _, _ = start_marketing_network(workdir, lambda _: None, customers=customers)
        return MarketingStage(net, people, dict(MARKETING_KEYS))
    out = MarketingDemo()
    net, people, _, _, task = start_marketing_with_stats(workdir, lambda _: None, out, customers=customers)
    return MarketingStage(net, people, dict(MARKETING_KEYS), out.stats_run, task)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=Path(".console-demo"))
    ap.add_argument("--enterprises", type=int, default=600)
    args = ap.parse_args()
    if args.workdir.exists() and any(args.workdir.iterdir()):
        raise SystemExit(f"error: {args.workdir} is not empty; remove it or pass another --workdir")
    stage = start_stage(args.workdir, enterprises=args.enterprises)
    try:
        for org in stage.net.orgs:
            print(f"{org}: {stage.console(org)}")
        for person in KEYS:
            print(f"  {person}: {stage.key(person)}")
        print("Ctrl-C stops the network")
        done = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: done.set())
        with contextlib.suppress(KeyboardInterrupt):
            done.wait()
    finally:
        stage.net.stop_all()


if __name__ == "__main__":
    main()
