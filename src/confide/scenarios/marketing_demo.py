"""The precision-marketing scenario (``confide demo marketing``): PSI and secret-sharing MPC between nodes.

A bank wants to know which of its customers to approach with a wealth-management campaign and asks
a telecom operator to help without either handing its data to the other. Three org nodes and the
ordering service run as processes on loopback (https): the bank, the telecom, and a neutral data
exchange whose node only deals Beaver triples (it reads no data; it must not collude with either
party - the trust model of ``engines.mpc.beaver``).

1. The owners register their files; the bank's analyst applies for both (engines psi and mpc); the
   owners approve.
2. ECDH-PSI (output both): each side learns the overlap, nothing about the other's other rows.
3. Joint statistics by segment (the bank's asset tier x the telecom's spend tier): count, mean
   spend and mean assets per cell, computed on shares; the owners approve the release; revealed.
4. SS-LR: a response model trained on shares (bank: assets, products held, age, the past response;
   telecom: monthly spend, data usage, tenure), **each party standardizing its own columns on its
   own aligned rows**. Inside the MPC the model scores every overlapping customer; only the scores
   are released (after both owners approve), never the weights or a telecom column. The bank
   computes the AUC against its own labels.

As a reference only - no party could compute it - the demo process also trains the same model
(same algorithm, same batches, float64) on the pooled plaintext from the generator and prints its
AUC beside the MPC model's.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..crypto import Identity
from ..engines.mpc.logreg import LrSpec, auc, predict_scores, train_plain
from ..interfaces import sdk
from ..interfaces.client import Client
from ..interfaces.mpc import fetch_mpc_result, run_mpc_task, segment_table, submit_lr_task, submit_mpc_task
from ..interfaces.psi import run_psi_task, submit_psi_task
from ..node.consortium import OrgEntry
from .localnet import LocalNetwork, start_local_network
from .marketing_data import MarketingData, pooled, write_marketing_data

__all__ = [
    "MARKETING_ORGS",
    "MarketingDemo",
    "run_marketing_demo",
    "start_marketing_network",
    "start_marketing_with_stats",
]

MARKETING_ORGS = (
    OrgEntry("bank", "Bank of Example (示例银行)", "91350100M000100Y43"),
    OrgEntry("telecom", "Example Mobile, city branch (示例移动)"),
    OrgEntry("exchange", "Municipal Data Exchange (市数据交易所)"),
)
CUSTOMERS, SUBSCRIBERS, DEALER = "bank/retail/customers", "telecom/mobile/subscribers", "exchange"
BANK_COLS = ["phone", "asset_tier", "assets", "products_held", "age", "responded"]
TEL_COLS = ["phone", "monthly_spend", "data_gb", "tenure_months", "spend_tier"]
BANK_FEATURES = ["assets", "products_held", "age"]
TEL_FEATURES = ["monthly_spend", "data_gb", "tenure_months"]
DAY_MS = 86_400_000
MIN_CELL = 10
"""The telecom's policy on its dataset (``min_group_size``): every released aggregate covers at least
this many subscribers; the MPC nodes enforce it inside the computation (smaller segments come out
suppressed, the bank never learns their values)."""
EPOCHS, BATCH, RATE, SEED = 5, 256, 1.0, 11


@dataclass
class MarketingDemo:
    overlap: int = 0
    psi_run: str = ""
    stats_run: str = ""
    lr_run: str = ""
    segments: list[dict[str, Any]] = field(default_factory=list)
    scored: int = 0
    auc_mpc: float | None = None
    auc_pooled_plaintext: float | None = None
    auc_bank_only: float | None = None
    released: dict[str, bool] = field(default_factory=dict)


def _people(net: LocalNetwork, say: Callable[[str], None]) -> dict[str, Client]:
    people: dict[str, Client] = {}
    for org, unit, title in (("bank", "retail", "Retail Banking"), ("telecom", "mobile", "Mobile Services")):
        admin = net.client(org)
        say(f"[{org}] admin creates unit {unit!r} and a unit-owner key")
        sdk.create_unit(admin.ledger, admin.identity, unit, title)
        owner = Identity.generate()
        owner.save(net.root / org / "keys" / f"{unit}-owner.pem")
        sdk.add_member(
            admin.ledger, admin.identity, owner, name=f"{title} owner", roles=["unit_owner"], unit=unit
        )
        people[org] = Client(net.url(org), owner, ca_bundle=net.bundle)
    analyst = Identity.generate()
    analyst.save(net.root / "bank" / "keys" / "analyst.pem")
    bank = net.client("bank")
    say("[bank] admin adds a marketing analyst")
    sdk.add_member(bank.ledger, bank.identity, analyst, name="Bank marketing analyst", roles=["analyst"])
    people["analyst"] = Client(net.url("bank"), analyst, ca_bundle=net.bundle)
    people["analyst@telecom"] = Client(net.url("telecom"), analyst, ca_bundle=net.bundle)
    return people


def _datasets_and_grants(people: dict[str, Client], say: Callable[[str], None]) -> dict[str, str]:
    grants = {}
    for dataset, file, cols, title in (
        (CUSTOMERS, "customers.csv", BANK_COLS, "Retail customers (零售客户)"),
        (SUBSCRIBERS, "subscribers.csv", TEL_COLS, "Mobile subscribers (移动用户)"),
    ):
        org, unit, name = dataset.split("/")
        owner = people[org]
        policy = f"; policy: aggregates of at least {MIN_CELL} rows" if dataset == SUBSCRIBERS else ""
        say(f"[{org}] owner registers {file} as {dataset} (only schema, rows, digest on the ledger{policy})")
        owner.register_dataset(
            org=org,
            unit=unit,
            name=name,
            title=title,
            source={"type": "csv", "path": file, "column_types": {"phone": "string"}},  # +86... as text
            **({"min_group_size": MIN_CELL} if dataset == SUBSCRIBERS else {}),
        )
        analyst = people["analyst"]
        say(f"[bank] analyst applies for {dataset}: engines psi and mpc, columns {', '.join(cols)}")
        app = sdk.apply_for(
            analyst.ledger,
            analyst.identity,
            dataset=dataset,
            purpose="precision marketing: overlap, segment statistics, response model (精准营销)",
            engines=["psi", "mpc"],
            max_uses=10,
            columns=cols,
            expires_at=int(time.time() * 1000) + 30 * DAY_MS,
        ).tx_id
        say(f"[{org}] unit owner approves the application")
        sdk.approve(owner.ledger, owner.identity, app, "unit")
        grants[dataset] = app
    return grants


def _release(net: LocalNetwork, people: dict[str, Client], run: str, say: Callable[[str], None]) -> None:
    net.sync()
    for dataset in (CUSTOMERS, SUBSCRIBERS):
        org = dataset.split("/")[0]
        say(f"[{org}] owner approves the release of run {run[:16]} on the ledger")
        sdk.decide_release(people[org].ledger, people[org].identity, run, dataset)
    net.sync()


def _own_labels(net: LocalNetwork) -> dict[str, float]:
    """The bank's past responses, read by the bank from its own file."""
    with (net.root / "bank" / "data" / "customers.csv").open(encoding="utf-8") as f:
        return {r["phone"]: float(r["responded"]) for r in csv.DictReader(f)}


def _standardize(x: np.ndarray) -> np.ndarray:
    std = x.std(axis=0)
    out: np.ndarray = (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)
    return out


def pooled_reference(data: MarketingData) -> tuple[float, float]:
    """AUC of the same model (same algorithm and batches, float64) on the pooled plaintext, and of
    the bank's own columns alone: references only the generator can compute."""
    _, bx, tx, y = pooled(data)
    x = np.hstack([_standardize(bx), _standardize(tx)])
    spec = LrSpec(len(y), 3, 3, 0, EPOCHS, BATCH, RATE, SEED)
    full = auc(predict_scores(x, train_plain(x, y, spec)), y)
    xb = x[:, :3]
    own = auc(predict_scores(xb, train_plain(xb, y, LrSpec(len(y), 3, 0, 0, EPOCHS, BATCH, RATE, SEED))), y)
    return full, own


def start_marketing_network(
    workdir: Path, say: Callable[[str], None], *, customers: int = 10_000, canaries: bool = False
) -> tuple[LocalNetwork, dict[str, Client], MarketingData, dict[str, str]]:
    """The network running (bank, telecom, exchange), members (keys under each org's ``keys/``), the
    data written, both datasets registered and granted to the bank's analyst for psi and mpc."""
    net = start_local_network(workdir, MARKETING_ORGS, chain_id="confide-marketing", say=say)
    try:
        people = _people(net, say)
        say(f"writing synthetic data for {customers} bank customers into each org's own data folder")
        data = write_marketing_data(
            {o: net.root / o / "data" for o in ("bank", "telecom")}, customers=customers, canaries=canaries
        )
        grants = _datasets_and_grants(people, say)
        net.sync()
    except BaseException:
        net.stop_all()
        raise
    return net, people, data, grants


def start_marketing_with_stats(
    workdir: Path,
    say: Callable[[str], None],
    out: MarketingDemo,
    *,
    customers: int = 10_000,
    canaries: bool = False,
) -> tuple[LocalNetwork, dict[str, Client], MarketingData, dict[str, str], str]:
    """The network running, data written and granted, the psi run and the segment-statistics mpc run
    done and released by both owners (``out.psi_run``, ``out.overlap``, ``out.stats_run``).
    Returns (network, people, data, grants, the statistics task id); the caller stops the network."""
    net, people, data, grants = start_marketing_network(workdir, say, customers=customers, canaries=canaries)
    try:
        analyst = people["analyst"]

        say("[bank] analyst submits a psi task (ECDH-PSI, output both) on the phone numbers")
        psi_task = submit_psi_task(
            analyst,
            mine=(CUSTOMERS, grants[CUSTOMERS], "phone"),
            theirs=(SUBSCRIBERS, grants[SUBSCRIBERS], "phone"),
            output="both",
        )
        net.sync()
        psi = run_psi_task(analyst, psi_task, say=say)
        out.psi_run, out.overlap = psi["run"], int(psi["intersection_size"])
        say(f"[bank] overlap: {out.overlap} of its {customers} customers are the telecom's subscribers")
        net.sync()

        say("[bank] analyst submits an mpc task: segment statistics, asset tier x spend tier")
        stats_task = submit_mpc_task(
            analyst,
            mine=(CUSTOMERS, grants[CUSTOMERS], ["phone", "asset_tier", "assets"]),
            theirs=(SUBSCRIBERS, grants[SUBSCRIBERS], ["phone", "monthly_spend", "spend_tier"]),
            psi_run=out.psi_run,
            dealer=DEALER,
            group_key=f"{CUSTOMERS}:asset_tier",
            n_groups=4,
            cross_key=f"{SUBSCRIBERS}:spend_tier",
            n_cross=4,
        )
        net.sync()
        stats_run = run_mpc_task(analyst, stats_task, say=say)
        out.stats_run = stats_run["run"]
        _release(net, people, out.stats_run, say)
    except BaseException:
        net.stop_all()
        raise
    return net, people, data, grants, stats_task


def run_marketing_demo(
    workdir: Path,
    say: Callable[[str], None] = print,
    *,
    customers: int = 10_000,
    canaries: bool = False,
) -> MarketingDemo:
    out = MarketingDemo()
    net, people, data, grants, stats_task = start_marketing_with_stats(
        workdir, say, out, customers=customers, canaries=canaries
    )
    try:
        analyst = people["analyst"]
        clients = {"bank": analyst, "telecom": people["analyst@telecom"]}
        stats = fetch_mpc_result(clients, out.stats_run)
        out.segments = segment_table(stats, analyst.query(f"task/{stats_task}"))
        out.released["stats"] = True
        say("[bank] both shares fetched, checked against the ledger commitment and added up")

        say(
            "[bank] analyst submits an mpc task: SS-LR response model (label: the bank's past responses); "
            "each party standardizes its own columns"
        )
        lr_task = submit_lr_task(
            analyst,
            mine=(CUSTOMERS, grants[CUSTOMERS], ["phone", *BANK_FEATURES, "responded"]),
            theirs=(SUBSCRIBERS, grants[SUBSCRIBERS], ["phone", *TEL_FEATURES]),
            psi_run=out.psi_run,
            dealer=DEALER,
            label=f"{CUSTOMERS}:responded",
            epochs=EPOCHS,
            batch_size=BATCH,
            learning_rate=RATE,
            shuffle_seed=SEED,
        )
        net.sync()
        lr_run = run_mpc_task(analyst, lr_task, say=say)
        out.lr_run = lr_run["run"]
        _release(net, people, out.lr_run, say)
        scored = fetch_mpc_result(clients, out.lr_run)
        out.released["scores"] = True
        labels = _own_labels(net)
        ids, scores = scored["ids"], np.asarray(scored["scores"])
        out.scored = len(ids)
        out.auc_mpc = auc(scores, np.array([labels[i] for i in ids]))
        say(f"[bank] {out.scored} overlapping customers scored; AUC against its own labels {out.auc_mpc:.4f}")
        say("[reference] training the same model on the pooled plaintext in this demo process")
        out.auc_pooled_plaintext, out.auc_bank_only = pooled_reference(data)
    finally:
        say("stopping the orderer and the nodes")
        net.stop_all()
    return out
