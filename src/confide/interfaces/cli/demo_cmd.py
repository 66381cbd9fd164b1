"""``confide demo``: runnable scenarios."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from ...ledger.audit import audit_trail, fmt_time
from ...ledger.embedded import ChainDB, Replica, verify_chain
from ...ledger.local import LocalLedger
from ...scenarios.foundation import run_foundation_demo
from ._common import console, friendly
from .catalog_cmd import print_audit

demo_app = typer.Typer(help="Run end-to-end scenarios.", no_args_is_help=True)


@demo_app.command("foundation")
@friendly
def foundation(
    workdir: Path = typer.Option(Path(".demo"), help="Folder for the demo ledger (recreated)."),
) -> None:
    """Three orgs, catalog, application and two-level approval on the embedded ledger."""
    if workdir.exists():
        shutil.rmtree(workdir)
    console.rule("[bold]Confide foundation demo: bank · tax bureau · power company")
    result = run_foundation_demo(workdir, say=lambda s: console.print(f"  {escape(s)}"))
    led = LocalLedger(workdir)
    r = led.backend.orderer.replica
    now = led.backend.head().time

    console.rule("catalog (org → unit → dataset)")
    print_catalog(led.genesis.name, r.contract.query(r.state, "catalog", now))

    console.rule("the grant")
    grant = r.contract.query(r.state, f"application/{result.grant_id}", now)
    names = {a["by"]: r.contract.query(r.state, f"member/{a['by']}", now)["name"] for a in grant["approvals"]}
    print_grant(grant, names)

    console.rule("audit trail")
    print_audit(audit_trail(led.db))

    console.rule("independent replica")
    replica = Replica(ChainDB(workdir / "replica.sqlite"), led.genesis)
    for block in led.db.blocks_since(-1, 10_000):
        replica.apply_block(block)
    ours, theirs = led.db.state_root(led.genesis.crypto), replica.state_root()
    report = verify_chain(led.db, led.genesis)
    console.print(f"orderer state root  {ours}\nreplica state root  {theirs}")
    console.print(f"roots match: {ours == theirs};  'ledger verify': {'OK' if report.ok else report.problem}")
    led.close()
    if ours != theirs or not report.ok:
        raise typer.Exit(1)


def print_catalog(title: str, catalog: list[dict[str, Any]]) -> None:
    tree = Tree(f"[bold]{escape(title)}[/]")
    for org in catalog:
        o = tree.add(f"[bold cyan]{org['id']}[/] {escape(org['name'])}")
        for unit in org["units"]:
            u = o.add(f"[magenta]{unit['id']}[/] {escape(unit['name'])}")
            for d in unit["datasets"]:
                u.add(f"{d['id']}  [dim]{d['kind']}, v{d['version']}, {d['rows']:,} rows[/]")
    console.print(tree)


def print_grant(grant: dict[str, Any], names: dict[str, str]) -> None:
    table = Table(show_header=False, box=None)
    for key in ("id", "dataset", "applicant_org", "purpose", "status", "uses_left"):
        table.add_row(f"[bold]{key}[/]", str(grant[key]))
    table.add_row("[bold]columns[/]", ", ".join(grant["columns"]))
    table.add_row("[bold]engines[/]", ", ".join(grant["engines"]))
    table.add_row("[bold]expires[/]", fmt_time(grant["expires_at"]) + " (block time)")
    for a in grant["approvals"]:
        who = names.get(a["by"], a["by"][:16])
        table.add_row(
            f"[bold]approved ({a['level']})[/]", f"{escape(who)} at {fmt_time(a['at'])}, tx {a['tx'][:16]}"
        )
    console.print(table)


@demo_app.command("network")
@friendly
def network(
    workdir: Path = typer.Option(Path(".demo"), help="Folder for the consortium (recreated)."),
) -> None:
    """Orderer + three org nodes as processes on loopback; real files; apply/approve/enforce via the API."""
    from ...scenarios.network_demo import run_network_demo

    if workdir.exists():
        shutil.rmtree(workdir)
    console.rule("[bold]Confide network demo: orderer + bank · tax bureau · power company nodes")
    out = run_network_demo(workdir, say=lambda s: console.print(f"  {escape(s)}"))
    console.rule("catalog, as the bank's node sees it (metadata only)")
    print_catalog("Confide demo consortium", out.catalog)
    console.rule("synthetic preview of tax/collection/filings (generated from the schema, never real rows)")
    for row in out.preview["rows"]:
        console.print(f"  {row}")
    console.rule("the grant")
    names = {e["tx_id"]: e["who"] for e in out.audit}
    print_grant(out.grant, {a["by"]: names.get(a["tx"], a["by"][:16]) for a in out.grant["approvals"]})
    console.rule("enforcement at the tax bureau's node")
    console.print(f"  granted columns, engine tee: allowed (uses left {out.allowed['uses_left']})")
    console.print(f"  column tax_paid_cny: refused — {escape(out.denied)}")
    console.rule("audit trail (from the bank's node)")
    print_audit(out.audit)
    console.rule("state roots")
    for org, root in out.roots.items():
        console.print(f"  {org:>6}  {root}")
    same = len(set(out.roots.values())) == 1
    console.print(f"  every node reports the same state root: {same}")
    if not same or not out.denied:
        raise typer.Exit(1)


@contextlib.contextmanager
def _fabric_chain(workdir: Path) -> Iterator[dict[str, Any]]:
    """The Fabric Gateway stand-in on loopback (the real chaincode behind it), one MSP per org."""
    from ...node.consortium import FabricOrg
    from ...scenarios.fabricnet import fabric_network
    from ...scenarios.network_demo import NETWORK_ORGS

    msps = {o.id: f"{o.id.title()}MSP" for o in NETWORK_ORGS}
    with fabric_network(
        workdir.parent / f"{workdir.name}-fabric", list(msps.values()), chaincodes=["confide-log"], tls=True
    ) as net:
        console.print(f"  started the Fabric Gateway stand-in at {net.endpoint} (TLS, channel {net.channel})")
        orgs = [FabricOrg(net.endpoint, m, *net.clients[m], net.tls_root) for m in msps.values()]
        yield {"ledger": "fabric", "fabric_orgs": orgs}


@contextlib.contextmanager
def _chainmaker_chain(workdir: Path) -> Iterator[dict[str, Any]]:
    """The ChainMaker stand-in on loopback (one org per Confide org), driven by the official SDK."""
    from ...scenarios.chainmakerchain import chainmaker_standin
    from ...scenarios.network_demo import NETWORK_ORGS

    orgs = [f"{o.id}.confide.local" for o in NETWORK_ORGS]
    with chainmaker_standin(workdir.parent / f"{workdir.name}-chainmaker", orgs=orgs) as net:
        console.print(f"  started the ChainMaker stand-in at {net.endpoint} (chain {net.chain_id})")
        yield {
            "ledger": "chainmaker",
            "chainmaker_configs": [net.sdk_config(i) for i in range(len(orgs))],
            "chainmaker_admin_config": net.admin_config,
            "chainmaker_chain_id": net.chain_id,
        }


@demo_app.command("credit")
@friendly
def credit(
    workdir: Path = typer.Option(Path(".demo"), help="Folder for the consortium (recreated)."),
    enterprises: int = typer.Option(3000, min=200, max=200_000, help="Enterprises in the synthetic data."),
    ledger: str = typer.Option(
        "embedded",
        help="embedded (solo orderer), evm (a local ganache orders), etcd (a 3-member etcd cluster) or "
        "fabric (the Fabric Gateway stand-in running the real chaincode) or chainmaker (the ChainMaker "
        "stand-in, driven by the official SDK).",
    ),
    evm_rpc: str | None = typer.Option(
        None, help="evm: the chain's JSON-RPC endpoint (default: start a local ganache from chain/evm)."
    ),
    evm_key: str | None = typer.Option(
        None, envvar="CONFIDE_EVM_KEY", help="evm: a funded account's 0x key."
    ),
) -> None:
    """Enterprise credit: a bank scores applicants with tax and power data inside an attested enclave."""
    import contextlib
    import json

    from ...scenarios.credit_demo import run_credit_demo
    from ...scenarios.etcdcluster import etcd_cluster
    from ...scenarios.evmchain import ganache

    if ledger not in ("embedded", "evm", "etcd", "fabric", "chainmaker"):
        raise typer.BadParameter("--ledger: embedded, evm, etcd, fabric or chainmaker")
    if workdir.exists():
        shutil.rmtree(workdir)
    console.rule(
        f"[bold]Confide credit demo: bank · tax bureau · power company, TEE (simulated), {ledger} ledger"
    )
    with contextlib.ExitStack() as stack:
        chain: dict[str, Any] = {}
        if ledger == "evm":
            if evm_rpc is None:
                node = stack.enter_context(ganache(workdir.parent / f"{workdir.name}-ganache.log"))
                evm_rpc, evm_key = node.url, node.key
                console.print(f"  started a local EVM node (ganache) at {evm_rpc}")
            chain = {"ledger": "evm", "evm_rpc_url": evm_rpc, "evm_funder_key": evm_key}
        if ledger == "etcd":  # one member per org, started here on loopback
            cluster = stack.enter_context(etcd_cluster(workdir.parent / f"{workdir.name}-etcd"))
            console.print(f"  started a three-member etcd cluster: {', '.join(cluster.urls)}")
            chain = {"ledger": "etcd", "etcd_endpoints": cluster.urls}
        if ledger == "fabric":
            chain = stack.enter_context(_fabric_chain(workdir))
        if ledger == "chainmaker":
            chain = stack.enter_context(_chainmaker_chain(workdir))
        out = run_credit_demo(
            workdir, say=lambda s: console.print(f"  {escape(s)}"), enterprises=enterprises, ledger=chain
        )
    summary = out.score_summary()
    console.rule("the bank's result: credit scores for its applicants (300-900, higher is safer)")
    console.print(
        f"  {summary['scored']} of {summary['applicants']} applicants scored "
        f"(the rest are unknown to the tax bureau or the power company)"
    )
    quantiles = f"{summary['score_p10']} / {summary['score_median']} / {summary['score_p90']}"
    console.print(f"  score p10 / median / p90: {quantiles}")
    console.print(f"  bands: {summary['bands']}")
    m = out.metrics
    console.print(
        f"  model: logistic regression on {len(m.get('features', []))} features, trained on "
        f"{m.get('train_rows')} labelled loans; AUC on {m.get('holdout_rows')} held-out loans: "
        f"{m.get('auc_holdout')}"
    )
    console.rule("provenance of the result (verified by every node from its own blocks)")
    report = out.provenance.get("bank", {})
    att = out.attestation
    console.print(
        f"  enclave: tee_type {att.get('tee_type')}, hosted by {att.get('host_org')}, quote bound to block "
        f"{att.get('block_hash', '')[:16]}…; output digest {report.get('output_digest', '')[:16]}…"
    )
    for step in sorted(report.get("chain", []), key=lambda s: s.get("height", -1)):
        org, block = step.get("signer_org") or "?", step.get("block_hash") or ""
        console.print(
            f"  block {step.get('height'):>4}  {block[:12]}…  {step.get('type', ''):<20} "
            f"{escape(step['what'])}  (signed by {org})"
        )
    for check in report.get("checks", []):
        mark = "ok  " if check["ok"] else "FAIL"
        console.print(f"  {escape(f'[{mark}]')} {escape(check['check'])}: {escape(check['detail'])}")
    for org, rep in out.provenance.items():
        console.print(f"  {org:>6} node: provenance verified = {rep['verified']}")
    for org, root in out.state_roots.items():
        console.print(f"  {org:>6} node: state root {root}")
    last = {
        "scenario": "credit",
        "ledger": ledger,
        "state_roots_agree": len(set(out.state_roots.values())) == 1,
        "released": out.result is not None,
        "provenance_verified": out.provenance_verified,
        "tee_type": att.get("tee_type"),
        "run": out.run,
        "output_digest": report.get("output_digest"),
        "auc_holdout": m.get("auc_holdout"),
        **summary,
    }
    print(json.dumps(last, ensure_ascii=False))
    if not (last["released"] and last["provenance_verified"]):
        raise typer.Exit(1)


@demo_app.command("marketing")
@friendly
def marketing(
    workdir: Path = typer.Option(Path(".demo"), help="Folder for the consortium (recreated)."),
    customers: int = typer.Option(
        10_000, min=1000, max=1_000_000, help="Bank customers in the synthetic data."
    ),
    canaries: bool = typer.Option(False, hidden=True, help="Plant canary values in the telecom-only rows."),
) -> None:
    """Precision marketing: a bank and a telecom, PSI and secret-sharing MPC (no hardware trusted)."""
    import json

    from ...scenarios.marketing_demo import MIN_CELL, run_marketing_demo

    if workdir.exists():
        shutil.rmtree(workdir)
    console.rule("[bold]Confide marketing demo: bank · telecom · data exchange (dealer), PSI + MPC")
    out = run_marketing_demo(
        workdir, say=lambda s: console.print(f"  {escape(s)}"), customers=customers, canaries=canaries
    )
    console.rule("what the bank learned")
    console.print(f"  overlap (PSI): {out.overlap} of its {customers} customers")
    table = Table(
        title="segments: count / mean monthly spend (CNY) / mean assets (CNY), released by both owners"
    )
    table.add_column("asset tier \\ spend tier")
    for j in range(4):
        table.add_column(f"spend {j}", justify="right")
    for i in range(4):
        cells = [c for c in out.segments if c["asset_tier"] == i]
        row = []
        for c in sorted(cells, key=lambda c: int(c["spend_tier"])):
            if c.get("suppressed"):
                row.append(f"< {MIN_CELL} (suppressed)")
                continue
            if not c["count"]:
                row.append("0")
                continue
            row.append(f"{c['count']} / {c['monthly_spend']['mean']:,.0f} / {c['assets']['mean']:,.0f}")
        table.add_row(f"assets {i}", *row)
    console.print(table)
    auc_mpc, auc_ref = out.auc_mpc, out.auc_pooled_plaintext
    console.print(
        f"  response model (SS-LR on shares, 6 features, scores released, weights never revealed): "
        f"{out.scored} overlapping customers scored, AUC {auc_mpc:.4f}"
        if auc_mpc is not None
        else "  response model: not released"
    )
    if auc_ref is not None:
        ref = (
            "[reference, computed in this demo process from the generator's pooled plaintext - "
            f"no party holds it] same model in float64: AUC {auc_ref:.4f}; the bank's own 3 columns alone: "
            f"AUC {out.auc_bank_only:.4f}"
        )
        console.print(f"  {escape(ref)}")
    released = bool(out.released.get("stats") and out.released.get("scores"))
    close = auc_mpc is not None and auc_ref is not None and abs(auc_mpc - auc_ref) <= 0.01
    last = {
        "scenario": "marketing",
        "released": released,
        "overlap": out.overlap,
        "scored": out.scored,
        "segments": [  # [asset tier, spend tier, count, mean monthly spend, mean assets]; None: suppressed
            [c["asset_tier"], c["spend_tier"], None, None, None]
            if c.get("suppressed")
            else [
                c["asset_tier"],
                c["spend_tier"],
                c["count"],
                c["monthly_spend"]["mean"] and round(c["monthly_spend"]["mean"], 2),
                c["assets"]["mean"] and round(c["assets"]["mean"], 2),
            ]
            for c in out.segments
        ],
        "min_cell": MIN_CELL,
        "auc_mpc": None if auc_mpc is None else round(auc_mpc, 4),
        "auc_pooled_plaintext": None if auc_ref is None else round(auc_ref, 4),
        "auc_bank_only_plaintext": None if out.auc_bank_only is None else round(out.auc_bank_only, 4),
        "psi_run": out.psi_run,
        "stats_run": out.stats_run,
        "lr_run": out.lr_run,
    }
    print(json.dumps(last, ensure_ascii=False))
    if not (released and close):
        raise typer.Exit(1)


@demo_app.command("flood")
@friendly
def flood(
    workdir: Path = typer.Option(Path(".demo-flood"), help="Folder for the consortium (recreated)."),
    days: int = typer.Option(365, min=30, max=730, help="Days of hourly records per city."),
    rounds: int = typer.Option(10, min=1, max=200, help="Federated training rounds."),
    model: str = typer.Option("mlp", help="mlp (one hidden layer of 16) or logreg."),
    dp_noise: float | None = typer.Option(
        None, min=0.0, help="Differential privacy: clip each update to norm 1 and add this noise multiplier."
    ),
) -> None:
    """Waterlogging prediction: a provincial bureau and four cities, FL with secure aggregation."""
    from ...scenarios.flood_demo import as_json, run_flood_demo

    if model not in ("mlp", "logreg"):
        raise typer.BadParameter("--model: mlp or logreg")
    if workdir.exists():
        shutil.rmtree(workdir)
    console.rule("[bold]Confide flood demo: provincial data bureau · four cities' water authorities, FL")
    out = run_flood_demo(
        workdir,
        say=lambda s: console.print(f"  {escape(s)}"),
        days=days,
        rounds=rounds,
        model=model,
        dp_noise=dp_noise,
    )
    console.rule("rounds on the ledger (participants, model digest)")
    for r in out.rounds:
        gone = f"  dropped: {', '.join(r['dropped'])}" if r["dropped"] else ""
        console.print(
            f"  round {r['round']:>3}  {len(r['participants'])} cities  {r['model_digest'][:16]}…{gone}"
        )
    console.rule("holdout metrics (rows of every city's holdout days)")
    table = Table()
    for col in ("model", "AUC", "log loss", "who can compute it"):
        table.add_column(col)
    m = out.metrics
    table.add_row(
        "federated (secure aggregation)",
        str(m.get("val_auc")),
        str(m.get("val_log_loss")),
        "the bureau, released",
    )
    for name, ref in out.reference.items():
        who = "no one (pooled reference)" if name == "pooled" else f"{name} alone, on its own rows"
        table.add_row(f"centralized: {name}", f"{ref['auc']:.4f}", f"{ref['log_loss']:.4f}", who)
    console.print(table)
    console.print(
        f"  the released model scored in this process on the same rows: AUC {out.auc_federated_local_check} "
        "(the secure metrics use 400 score bins)"
    )
    if out.dp:
        console.print(f"  differential privacy: {out.dp}")
    for org, path in out.maps.items():
        console.print(f"  risk map {org}: {path}")
    console.print(f"  every node reports the same state root: {out.roots_agree}")
    print(as_json(out))
    if not (out.released and out.roots_agree):
        raise typer.Exit(1)
