"""The enterprise-credit scenario (``confide demo credit``, what ``make demo`` runs).

A bank scores its loan applicants with a tax bureau's filings and a power company's consumption,
and neither hands its data to the bank. Three org nodes and the ordering service run as processes on
loopback (https). The owners register their files; the bank's analyst applies for each dataset and
the owners approve (the tax bureau at two levels); the analyst submits a tee task whose code is the
registered ``credit_score`` function, on the ledger for everyone to read. The bank's node hosts the
(simulated) enclave; each owner's node verifies its quote against its own ledger view and streams
only the granted columns, encrypted to the enclave. Inside, a logistic model is trained on the
bank's labelled history joined with tax and power features and scores the applicants. The owners see
the enclave's signed preview and approve; only then does the bank get the scores, encrypted to its
key. Every node re-verifies the result's provenance from its own blocks.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..engines.tee.functions import task_code
from ..interfaces import sdk
from ..interfaces.client import Client
from ..interfaces.tee import approve_release, fetch_result, recipient_public, release_preview, run_tee_task
from .credit_data import write_credit_data
from .localnet import LocalNetwork, start_local_network
from .network_demo import NETWORK_ORGS, create_members

__all__ = ["DATASETS", "CreditDemo", "grant_datasets", "run_credit_demo", "start_credit_network"]

DAY_MS = 86_400_000
DATASETS: dict[str, dict[str, Any]] = {
    "tax/collection/filings": {
        "title": "Annual tax filings (年度纳税申报)",
        "source": {"type": "csv", "path": "filings.csv"},
        "levels": ["unit", "org"],
        "columns": ["credit_code", "year", "revenue_cny", "tax_paid_cny", "overdue_days"],
    },
    "power/service/consumption": {
        "title": "Monthly electricity consumption (月度用电量)",
        "source": {"type": "jsonl", "path": "consumption.jsonl"},
        "levels": ["unit"],
        "columns": ["credit_code", "month", "meter.kwh", "arrears_cny"],
    },
    "bank/credit/loans": {
        "title": "Loan book: history and applicants (贷款台账)",
        "source": {"type": "csv", "path": "loans.csv"},
        "levels": ["unit"],
        "columns": ["credit_code", "loan_cny", "term_months", "overdue_days", "status", "defaulted"],
    },
}


@dataclass
class CreditDemo:
    run: str = ""
    task: str = ""
    previews: dict[str, dict[str, Any]] = field(default_factory=dict)
    result: pa.Table | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, dict[str, Any]] = field(default_factory=dict)
    state_roots: dict[str, str] = field(default_factory=dict)
    attestation: dict[str, Any] = field(default_factory=dict)

    @property
    def provenance_verified(self) -> bool:
        return bool(self.provenance) and all(r["verified"] for r in self.provenance.values())

    def score_summary(self) -> dict[str, Any]:
        assert self.result is not None
        rows = self.result.to_pylist()
        scores = sorted(r["score"] for r in rows if r["score"] is not None)
        q = statistics.quantiles(scores, n=10) if len(scores) >= 10 else scores
        return {
            "applicants": len(rows),
            "scored": len(scores),
            "score_p10": round(q[0]) if q else None,
            "score_median": round(statistics.median(scores)) if scores else None,
            "score_p90": round(q[-1]) if q else None,
            "bands": dict(sorted(Counter(r["band"] for r in rows if r["band"]).items())),
        }


def _register(net: LocalNetwork, people: dict[str, Client], say: Callable[[str], None]) -> None:
    for dataset, spec in DATASETS.items():
        org, unit, name = dataset.split("/")
        say(
            f"[{org}] owner registers {spec['source']['path']} as {dataset} "
            "(only schema, rows, digest on the ledger)"
        )
        people[f"{org}-owner"].register_dataset(
            org=org,
            unit=unit,
            name=name,
            title=spec["title"],
            source=spec["source"],
            approval_levels=spec["levels"],
        )


def grant_datasets(
    net: LocalNetwork,
    people: dict[str, Client],
    say: Callable[[str], None],
    datasets: Sequence[str] = tuple(DATASETS),
) -> dict[str, str]:
    """The analyst applies for each of ``datasets`` (engine tee, its columns) and the owners approve."""
    analyst, grants = people["analyst"], {}
    for dataset in datasets:
        spec = DATASETS[dataset]
        org = dataset.split("/")[0]
        say(f"[bank] analyst applies for {dataset}: engine tee, columns {', '.join(spec['columns'])}")
        app = sdk.apply_for(
            analyst.ledger,
            analyst.identity,
            dataset=dataset,
            purpose="enterprise credit assessment of loan applicants (企业信用评估)",
            engines=["tee"],
            max_uses=3,
            columns=spec["columns"],
            expires_at=int(time.time() * 1000) + 30 * DAY_MS,
        ).tx_id
        owner = people[f"{org}-owner"]
        say(
            f"[{org}] unit owner approves"
            + (", then the org admin (2 levels)" if "org" in spec["levels"] else "")
        )
        sdk.approve(owner.ledger, owner.identity, app, "unit")
        if "org" in spec["levels"]:
            admin = net.client(org)
            sdk.approve(admin.ledger, admin.identity, app, "org")
        grants[dataset] = app
    return grants


def start_credit_network(
    workdir: Path,
    say: Callable[[str], None] = print,
    *,
    enterprises: int = 3000,
    canaries: dict[str, str] | None = None,
    ledger: dict[str, Any] | None = None,
) -> tuple[LocalNetwork, dict[str, Client]]:
    """The three org nodes and the orderer running, members created (keys under each org's
    ``keys/``), the synthetic data written and the three datasets registered; no grant yet.
    ``ledger``: e.g. ``{"ledger": "evm", "evm_rpc_url": ..., "evm_funder_key": ...}``."""
    net = start_local_network(workdir, NETWORK_ORGS, chain_id="confide-credit", say=say, **(ledger or {}))
    try:
        people = create_members(net, say)
        say(f"writing synthetic data for {enterprises} enterprises into each org's own data folder")
        write_credit_data(
            {o: net.root / o / "data" for o in net.orgs}, enterprises=enterprises, canaries=canaries
        )
        _register(net, people, say)
    except BaseException:
        net.stop_all()
        raise
    return net, people


def run_credit_demo(
    workdir: Path,
    say: Callable[[str], None] = print,
    *,
    enterprises: int = 3000,
    canaries: dict[str, str] | None = None,
    ledger: dict[str, Any] | None = None,
) -> CreditDemo:
    out = CreditDemo()
    net, people = start_credit_network(
        workdir, say, enterprises=enterprises, canaries=canaries, ledger=ledger
    )
    try:
        grants = grant_datasets(net, people, say)
        analyst = people["analyst"]
        code = task_code("credit_score")
        inputs = [{"dataset": d, "grant": grants[d], "columns": s["columns"]} for d, s in DATASETS.items()]
        params = {"recipient": recipient_public(analyst.identity)}
        say("[bank] analyst submits the tee task: the credit_score function's source goes on the ledger")
        r = sdk.submit_task(
            analyst.ledger, analyst.identity, engine="tee", inputs=inputs, code=code, params=params
        )
        out.task = r.tx_id
        run = run_tee_task(analyst, out.task, say=say)
        out.run, out.attestation = run["run"], run["attestation"]
        net.sync()
        for dataset in DATASETS:
            org = dataset.split("/")[0]
            owner = people[f"{org}-owner"]
            seen = release_preview(owner, out.run, dataset)
            out.previews[dataset] = seen
            p = seen["preview"] or {}
            cols = [c["name"] for c in p.get("columns", [])]
            auc = p.get("metrics", {}).get("auc_holdout")
            same = seen["input_digest_sent"] == seen["input_digest_received"]
            say(
                f"[{org}] owner reviews the enclave's signed preview: {p.get('rows')} rows, columns {cols}, "
                f"holdout AUC {auc}; the input digest its node sent equals the one the enclave got: {same}"
            )
            approve_release(owner, out.run, dataset)
            say(f"[{org}] owner approves the release on the ledger")
        net.sync()
        say(
            "[bank] the host node sees every approval on its ledger; "
            "the enclave encrypts the scores to the analyst"
        )
        out.result = fetch_result(analyst, out.run)
        meta = (out.result.schema.metadata or {}).get(b"confide.metrics", b"{}")
        out.metrics = json.loads(meta)
        height = net.sync()
        for org in net.orgs:
            report = net.client(org).call(
                "GET", f"/v1/tee/provenance/{out.run}", params={"min_height": height}
            )
            out.provenance[org] = report
            say(f"[{org}] node re-verifies the provenance from its own blocks: {report['verified']}")
        out.state_roots = {org: str(net.health(org)["state_root"]) for org in net.orgs}
    finally:
        say("stopping the orderer and the nodes")
        net.stop_all()
    return out
