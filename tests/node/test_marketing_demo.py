"""``confide demo marketing`` as a user runs it (a subprocess, small data): exit 0, a JSON last line whose
segment table equals the plaintext one, SS-LR within 0.01 AUC of pooled plaintext training, and a
canary check: the telecom's subscribers the bank does not have (their phone numbers and the canary
values planted in each of their numeric columns) never reach the bank's node folder (its database,
its ledger copy, its data and keys), the node logs of the bank and the orderer, the orderer's ledger,
the nodes' wire log (every PSI and MPC message any node accepted) or the demo's own output."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from netfixture import start_network

from confide.crypto import Identity
from confide.engines.mpc.logreg import LrSpec, auc, predict_scores, train_plain
from confide.interfaces import sdk
from confide.interfaces.client import ApiCallError, Client
from confide.interfaces.mpc import MpcRunFailed, fetch_mpc_result, run_mpc_task, submit_lr_task
from confide.interfaces.psi import run_psi_task, submit_psi_task
from confide.scenarios.marketing_data import (
    CANARY_VALUES,
    generate_marketing_data,
    pooled,
    write_marketing_data,
)

pytestmark = pytest.mark.slow
CUSTOMERS = 2000
PHONE_DIGITS = re.compile(rb"1[3-9]\d{9}")


def _files(*roots: Path) -> list[Path]:
    out = []
    for r in roots:
        out += [r] if r.is_file() else [p for p in r.rglob("*") if p.is_file()]
    return out


def _plain_segments() -> dict[tuple[int, int], tuple[int, float, float]]:
    d = generate_marketing_data(CUSTOMERS, canaries=True)
    b = {p: i for i, p in enumerate(d.bank["phone"])}
    t = {p: i for i, p in enumerate(d.telecom["phone"])}
    cells: dict[tuple[int, int], list[tuple[float, float]]] = {}
    for p in d.overlap:
        key = (int(d.bank["asset_tier"][b[p]]), int(d.telecom["spend_tier"][t[p]]))  # type: ignore[call-overload]
        cells.setdefault(key, []).append(
            (float(d.telecom["monthly_spend"][t[p]]), float(d.bank["assets"][b[p]]))  # type: ignore[arg-type]
        )
    return {k: (len(v), *np.mean(v, axis=0)) for k, v in cells.items()}


def test_marketing_demo_releases_segments_and_scores_and_the_bank_never_sees_a_telecom_only_row(
    tmp_path: Path,
) -> None:
    work, wire = tmp_path / "demo", tmp_path / "wire.bin"
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "confide", "demo", "marketing"),
            *("--workdir", str(work)),
            "--canaries",
            "--customers",
            str(CUSTOMERS),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "CONFIDE_PSI_WIRE_LOG": str(wire), "COLUMNS": "200"},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    last = json.loads(proc.stdout.strip().splitlines()[-1])
    d = generate_marketing_data(CUSTOMERS, canaries=True)
    assert last["released"] is True and last["overlap"] == len(d.overlap) == 1200
    assert last["scored"] == 1200
    assert abs(last["auc_mpc"] - last["auc_pooled_plaintext"]) <= 0.01
    assert last["auc_mpc"] > last["auc_bank_only_plaintext"] + 0.02  # the telecom's columns help

    plain = _plain_segments()
    got = {(i, j): (n, spend, assets) for i, j, n, spend, assets in last["segments"]}
    k = last["min_cell"]
    group_rows = {i: sum(v[0] for (a, _), v in plain.items() if a == i) for i in range(4)}
    assert len(got) == 16 and k == 10
    for key, (n, spend, assets) in got.items():
        want = plain.get(key, (0, None, None))
        if want[0] < k or group_rows[key[0]] < k:  # the telecom's policy: suppressed inside the MPC
            assert (n, spend, assets) == (None, None, None), key
            continue
        assert n == want[0], key
        assert spend == pytest.approx(want[1], rel=1e-4, abs=0.02), key
        assert assets == pytest.approx(want[2], rel=1e-4, abs=1.0), key
    small = [key for key, v in plain.items() if v[0] < k]
    assert small and all(got[key][0] is None for key in small)  # e.g. a segment of 1 customer

    # the canary check
    telecom_only = {p.encode()[3:] for p in d.telecom["phone"] if p not in set(d.overlap)}  # type: ignore[union-attr]
    bank_phones = {p.encode()[3:] for p in d.bank["phone"]}  # type: ignore[union-attr]
    canaries = [v.encode() for v in CANARY_VALUES.values()]
    assert wire.stat().st_size > 0
    places = _files(work / "bank", work / "orderer", work / "bank.log", work / "orderer.log", wire)
    seen_bank = False
    for path in places:
        blob = path.read_bytes()
        found = set(PHONE_DIGITS.findall(blob))
        assert not found & telecom_only, f"a telecom-only phone number in {path}"
        assert not any(c in blob for c in canaries), f"a canary value in {path}"
        seen_bank |= bool(found & bank_phones)
    assert seen_bank  # control: the scan does find phone numbers where they are (the bank's own)
    telecom_blob = (work / "telecom" / "data" / "subscribers.csv").read_bytes()
    assert set(PHONE_DIGITS.findall(telecom_blob)) >= telecom_only  # control: they exist, on its side
    assert all(c in telecom_blob for c in canaries)
    out = proc.stdout.encode() + proc.stderr.encode()
    assert not set(PHONE_DIGITS.findall(out)) & telecom_only and not any(c in out for c in canaries)


def test_ss_lr_task_checks_and_scores_only_after_both_owners_release(tmp_path: Path) -> None:
    """SS-LR over the nodes (bank, "power" as the telecom, dealer "tax"): a label that is not the
    requester's and a dealer that is a party are refused; the scores leave no node before both owners
    approve; once released they are the same model's scores as float64 training on pooled rows."""
    net = start_network(tmp_path / "consortium")
    try:
        d = write_marketing_data(
            {"bank": net.root / "bank" / "data", "power": net.root / "power" / "data"},
            customers=600,
            seed=3,
            telecom="power",
        )
        ds = {"bank": "bank/retail/customers", "power": "power/mobile/subscribers"}
        cols = {
            "bank": ["phone", "assets", "products_held", "age", "responded"],
            "power": ["phone", "monthly_spend", "data_gb", "tenure_months"],
        }
        analyst_id = Identity.generate()
        bank = net.client("bank")
        sdk.add_member(bank.ledger, bank.identity, analyst_id, name="analyst", roles=["analyst"])
        analyst = Client(net.url("bank"), analyst_id, ca_bundle=net.bundle)
        owners, grants = {}, {}
        for org, unit, file in (("bank", "retail", "customers.csv"), ("power", "mobile", "subscribers.csv")):
            admin = net.client(org)
            sdk.create_unit(admin.ledger, admin.identity, unit, unit.title())
            owner = Identity.generate()
            sdk.add_member(admin.ledger, admin.identity, owner, name="owner", roles=["unit_owner"], unit=unit)
            owners[org] = c = Client(net.url(org), owner, ca_bundle=net.bundle)
            source = {"type": "csv", "path": file, "column_types": {"phone": "string"}}
            c.register_dataset(org=org, unit=unit, name=ds[org].split("/")[2], title=unit, source=source)
            app = sdk.apply_for(
                analyst.ledger,
                analyst.identity,
                dataset=ds[org],
                purpose="response model",
                columns=cols[org],
                engines=["psi", "mpc"],
                max_uses=10,
                expires_at=int(time.time() * 1000) + 86_400_000,
            ).tx_id
            sdk.approve(c.ledger, c.identity, app, "unit")
            grants[org] = app
        net.sync()
        psi_task = submit_psi_task(
            analyst,
            mine=(ds["bank"], grants["bank"], "phone"),
            theirs=(ds["power"], grants["power"], "phone"),
            output="both",
        )
        net.sync()
        psi_run = run_psi_task(analyst, psi_task)["run"]
        net.sync()

        def lr(label: str, dealer: str = "tax") -> str:
            task = submit_lr_task(
                analyst,
                mine=(ds["bank"], grants["bank"], cols["bank"]),
                theirs=(ds["power"], grants["power"], cols["power"]),
                psi_run=psi_run,
                dealer=dealer,
                label=label,
                epochs=4,
                batch_size=64,
                shuffle_seed=5,
            )
            net.sync()
            return task

        for label, dealer, code in (
            (f"{ds['power']}:data_gb", "tax", "BAD_TASK"),  # the label must be the requester's
            (f"{ds['bank']}:responded", "power", "DEALER_IS_A_PARTY"),
        ):
            with pytest.raises(MpcRunFailed) as failed:
                run_mpc_task(analyst, lr(label, dealer))
            assert code in failed.value.message or failed.value.code == code, failed.value

        out = run_mpc_task(analyst, lr(f"{ds['bank']}:responded"))
        net.sync()
        at = {o: Client(net.url(o), analyst_id, ca_bundle=net.bundle) for o in ("bank", "power")}
        for org in ("bank", "power"):  # before approval, neither node hands out its share
            with pytest.raises(ApiCallError) as refused:
                at[org].call("POST", f"/v1/mpc/shares/{out['run']}", {"min_height": -1})
            assert refused.value.code == "NOT_RELEASED"
        for org in ("bank", "power"):
            sdk.decide_release(owners[org].ledger, owners[org].identity, out["run"], ds[org])
        net.sync()
        got = fetch_mpc_result(at, out["run"])
    finally:
        net.stop_all()
    ids, bx, tx, y = pooled(d)
    assert got["ids"] == ids and len(got["scores"]) == len(ids) == 360

    def std(x: np.ndarray) -> np.ndarray:
        return (x - x.mean(axis=0)) / x.std(axis=0)

    x = np.hstack([std(bx), std(tx)])
    ref = predict_scores(x, train_plain(x, y, LrSpec(len(y), 3, 3, 0, 4, 64, 1.0, 5)))
    assert np.allclose(got["scores"], ref, atol=0.02)  # fixed point (16 fractional bits) vs float64
    assert abs(auc(np.asarray(got["scores"]), y) - auc(ref, y)) <= 0.01
