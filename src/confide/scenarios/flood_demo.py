"""The waterlogging-prediction scenario (``confide demo flood``): federated learning with secure
aggregation between a provincial data bureau and four cities' water authorities.

Five org nodes and the ordering service run as processes on loopback (https). Each city's water
authority keeps a year of hourly district records in its own data folder (``flood_data``); the
provincial data bureau (政数局) coordinates and never receives a row:

1. Each city's owner registers its table (schema, row count and digest on the ledger, rows stay).
   The bureau's analyst applies for each (engine ``fl``, the feature, holdout and label columns);
   each city approves.
2. The analyst submits an fl task (a small MLP by default, FedAvg) and runs it through the bureau's
   node: a set-up round (pooled feature statistics by secure sum), the training rounds, then the
   validation metrics by secure sum; every round's participants and model digest go on the ledger.
3. Each city's owner reads the metrics on the release record and approves; only then does the
   bureau's node hand the model to the analyst (checked against the digest on the ledger).
4. The analyst maps each city's predicted risk per district for the next three hours at the
   heaviest holdout hour (one SVG per city).

As a reference only - no party could compute it - the demo process also trains the same model on the
pooled rows of all four cities (same epochs in all) and on each city's rows alone, and prints their
holdout metrics beside the federated model's.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ..crypto import Identity
from ..engines.fl import auc, log_loss
from ..engines.fl.job import FlSpec, Standardization, predict
from ..interfaces import sdk
from ..interfaces.client import Client
from ..interfaces.fl import fetch_fl_model, run_fl_task, submit_fl_task
from ..node.consortium import OrgEntry
from .flood_data import (
    CITIES,
    FEATURES,
    HOLDOUT,
    LABEL,
    START,
    districts,
    generate_city,
    risk_hour,
    write_city,
)
from .flood_map import write_risk_map
from .localnet import LocalNetwork, start_local_network

__all__ = ["FLOOD_ORGS", "FloodDemo", "pooled_reference", "run_flood_demo"]

BUREAU = "bureau"
FLOOD_ORGS = (
    OrgEntry(BUREAU, "Provincial Data Bureau (省政务服务数据管理局)"),
    *(OrgEntry(c.org, f"{c.name_en} Water Authority ({c.name_zh}水务局)") for c in CITIES),
)
COLUMNS = [*FEATURES, HOLDOUT, LABEL]
DAY_MS = 86_400_000


@dataclass
class FloodDemo:
    task: str = ""
    run: str = ""
    rows: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    rounds: list[dict[str, Any]] = field(default_factory=list)
    released: bool = False
    model_digest: str = ""
    auc_federated_local_check: float | None = None
    reference: dict[str, dict[str, float]] = field(default_factory=dict)
    maps: dict[str, str] = field(default_factory=dict)
    roots_agree: bool = False
    dp: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def last_line(self) -> dict[str, Any]:
        return {
            "scenario": "flood",
            "released": self.released,
            "run": self.run,
            "model_digest": self.model_digest,
            "rounds": len([r for r in self.rounds if r["round"] > 0]),
            "participants": sorted(self.rows),
            "rows": self.rows,
            "val_auc_federated": _float(self.metrics.get("val_auc")),
            "val_log_loss_federated": _float(self.metrics.get("val_log_loss")),
            "val_auc_pooled": self.reference.get("pooled", {}).get("auc"),
            "val_log_loss_pooled": self.reference.get("pooled", {}).get("log_loss"),
            "maps": self.maps,
            "state_roots_agree": self.roots_agree,
            **({"dp": self.dp} if self.dp else {}),
            "seconds": round(self.seconds, 1),
        }


def _float(v: Any) -> float | None:
    return None if v is None else float(v)


def _city_tables(days: int) -> dict[str, pa.Table]:
    return {c.org: generate_city(c, days=days) for c in CITIES}


def _people(net: LocalNetwork, say: Callable[[str], None]) -> dict[str, Client]:
    people: dict[str, Client] = {}
    for c in CITIES:
        admin = net.client(c.org)
        sdk.create_unit(admin.ledger, admin.identity, "water", f"{c.name_en} drainage monitoring")
        owner = Identity.generate()
        owner.save(net.root / c.org / "keys" / "water-owner.pem")
        sdk.add_member(
            admin.ledger,
            admin.identity,
            owner,
            name=f"{c.name_en} data owner",
            roles=["unit_owner"],
            unit="water",
        )
        people[c.org] = Client(net.url(c.org), owner, ca_bundle=net.bundle)
    analyst = Identity.generate()
    analyst.save(net.root / BUREAU / "keys" / "analyst.pem")
    bureau = net.client(BUREAU)
    say("[bureau] admin adds an analyst for the provincial waterlogging model")
    sdk.add_member(bureau.ledger, bureau.identity, analyst, name="Bureau flood analyst", roles=["analyst"])
    people["analyst"] = Client(net.url(BUREAU), analyst, ca_bundle=net.bundle)
    return people


def _register_and_grant(
    net: LocalNetwork, people: dict[str, Client], days: int, say: Callable[[str], None]
) -> dict[str, str]:
    grants: dict[str, str] = {}
    analyst = people["analyst"]
    for c in CITIES:
        path = write_city(net.root / c.org / "data", c, days=days)
        owner = people[c.org]
        dataset = f"{c.org}/water/district_hours"
        say(f"[{c.org}] owner registers {path.name} as {dataset} (schema, rows and digest on the ledger)")
        owner.register_dataset(
            org=c.org,
            unit="water",
            name="district_hours",
            title=f"{c.name_zh} district hourly rainfall, water levels, drainage and waterlogging",
            source={"type": "parquet", "path": path.name},
        )
        app = sdk.apply_for(
            analyst.ledger,
            analyst.identity,
            dataset=dataset,
            purpose="provincial waterlogging (内涝) risk model, federated; no row leaves the city",
            columns=COLUMNS,
            engines=["fl"],
            max_uses=5,
            expires_at=int(time.time() * 1000) + 30 * DAY_MS,
        ).tx_id
        say(f"[{c.org}] owner approves the bureau's application: engine fl, {len(COLUMNS)} columns")
        sdk.approve(owner.ledger, owner.identity, app, "unit")
        grants[dataset] = app
    return grants


def _matrix(table: pa.Table, columns: list[str]) -> np.ndarray:
    return np.column_stack([table.column(c).to_numpy().astype(np.float64) for c in columns])


def pooled_reference(tables: dict[str, pa.Table], spec: FlSpec) -> dict[str, dict[str, float]]:
    """The same model trained centrally for ``rounds x local_epochs`` epochs on the pooled training
    rows (and on each city's rows alone), scored on the pooled holdout rows: a reference only."""
    cols = list(spec.features)
    data = {org: _matrix(t, [*cols, HOLDOUT, LABEL]) for org, t in tables.items()}
    pooled = np.vstack(list(data.values()))
    test = pooled[pooled[:, -2] == 1]
    out: dict[str, dict[str, float]] = {}

    def fit(rows: np.ndarray) -> tuple[Standardization, np.ndarray]:
        train = rows[rows[:, -2] == 0]
        x, y = train[:, : len(cols)], train[:, -1]
        scale = x.std(axis=0)
        scale[scale < 1e-9] = 1.0
        std = Standardization(x.mean(axis=0), scale, len(x))
        model = spec.new_model()
        model.local_train(
            std.apply(x),
            y,
            spec.rounds * spec.local_epochs,
            spec.lr,
            spec.batch_size,
            np.random.default_rng(spec.seed),
        )
        return std, model.get_params()

    for name, rows in [("pooled", pooled), *data.items()]:
        std, params = fit(rows)
        p = predict(spec, std, params, test[:, : len(cols)])
        out[name] = {"auc": round(auc(p, test[:, -1]), 4), "log_loss": round(log_loss(p, test[:, -1]), 4)}
    return out


def _maps(
    net: LocalNetwork, tables: dict[str, pa.Table], model: Any, workdir: Path, say: Callable[[str], None]
) -> dict[str, str]:
    out = {}
    (workdir / "maps").mkdir(parents=True, exist_ok=True)
    for c in CITIES:
        table = tables[c.org]
        hour = risk_hour(table)
        at = table.filter(pa.compute.equal(table.column("hour"), hour))
        x = _matrix(at, list(model.spec.features))
        risk = {d: float(r) for d, r in zip(at.column("district").to_pylist(), model.predict(x), strict=True)}
        observed = int(np.sum(at.column(LABEL).to_numpy()))
        day, hh = divmod(hour, 24)
        path = workdir / "maps" / f"{c.key}.svg"
        write_risk_map(
            path,
            c,
            districts(c),
            risk,
            title=f"{c.name_zh} {c.name_en}: waterlogging risk, next 3 hours",
            subtitle=f"from {START + dt.timedelta(days=day)} {hh:02d}:00 (UTC+8), a holdout day; "
            f"districts waterlogged in fact: {observed}",
        )
        out[c.org] = str(path)
        top = max(risk.values())
        say(f"[analyst] {path.name}: {len(risk)} districts, highest risk {top:.0%}, in fact {observed}")
    return out


def run_flood_demo(
    workdir: Path,
    say: Callable[[str], None] = print,
    *,
    days: int = 365,
    rounds: int = 10,
    model: str = "mlp",
    dp_noise: float | None = None,
) -> FloodDemo:
    t0 = time.monotonic()
    out = FloodDemo()
    say(f"generating a year of hourly district records for {len(CITIES)} cities (each in its own folder)")
    tables = _city_tables(days)
    out.rows = {org: t.num_rows for org, t in tables.items()}
    net = start_local_network(workdir, FLOOD_ORGS, chain_id="confide-flood", say=say)
    try:
        people = _people(net, say)
        grants = _register_and_grant(net, people, days, say)
        analyst = people["analyst"]
        dp = {} if dp_noise is None else {"dp_clip": 1.0, "dp_noise": dp_noise}
        inputs = [(d, g, COLUMNS) for d, g in grants.items()]
        say(
            f"[bureau] analyst submits the fl task: {model}, FedAvg, {rounds} rounds, secure aggregation"
            + (f", differential privacy (noise multiplier {dp_noise})" if dp else "")
        )
        out.task = submit_fl_task(
            analyst,
            inputs=inputs,
            label=LABEL,
            holdout=HOLDOUT,
            rounds=rounds,
            model=model,
            learning_rate=0.05,
            batch_size=128,
            hidden=16,
            seed=7,
            **dp,  # type: ignore[arg-type]
        )
        run = run_fl_task(analyst, out.task, say=say)
        out.run, out.metrics = run["run"], run["metrics"]
        net.sync()
        rec = analyst.query(f"run/{out.run}")
        out.rounds = rec["fl_rounds"]
        out.dp = {k: v for k, v in out.metrics.items() if k.startswith("dp_")}
        for c in CITIES:
            owner = people[c.org]
            dataset = f"{c.org}/water/district_hours"
            seen = owner.query(f"release/{out.run}")["metrics"]
            say(
                f"[{c.org}] owner reads the release record: holdout AUC {seen.get('val_auc')}, log loss "
                f"{seen.get('val_log_loss')} over {seen.get('val_rows')} rows of all cities; approves"
            )
            sdk.decide_release(owner.ledger, owner.identity, out.run, dataset)
        net.sync()
        fl_model = fetch_fl_model(analyst, out.run)
        out.released = True
        out.model_digest = fl_model.digest
        say(f"[bureau] model released to the analyst; digest {fl_model.digest[:16]}… matches the ledger")
        spec = fl_model.spec
        out.reference = pooled_reference(tables, spec)
        test = np.vstack([_matrix(t, [*spec.features, HOLDOUT, LABEL]) for t in tables.values()])
        test = test[test[:, -2] == 1]
        out.auc_federated_local_check = round(
            auc(fl_model.predict(test[:, : len(spec.features)]), test[:, -1]), 4
        )
        out.maps = _maps(net, tables, fl_model, workdir, say)
        roots = {net.health(o)["state_root"] for o in net.orgs}
        out.roots_agree = len(roots) == 1
    finally:
        net.stop_all()
    out.seconds = time.monotonic() - t0
    return out


def as_json(out: FloodDemo) -> str:
    return json.dumps(out.last_line(), ensure_ascii=False)
