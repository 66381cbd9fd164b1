"""Deterministic synthetic data for the enterprise-credit parties (small, for demos and tests).

Enterprises are keyed by valid unified social credit codes (GB 32100-2015).
The bank holds loan history (CSV), the tax bureau annual filings (CSV), the
power company monthly consumption as semi-structured JSONL with a nested meter
object. Values are correlated through a hidden per-enterprise health score, so
later issues can train a model that actually learns something.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from ..ledger.genesis import _CREDIT_ALPHABET, credit_code_check_char

__all__ = ["credit_code", "write_credit_data"]


def credit_code(rng: random.Random) -> str:
    body = "91" + "350100" + "".join(rng.choice(_CREDIT_ALPHABET) for _ in range(9))
    return body + credit_code_check_char(body)


def write_credit_data(
    data_dirs: dict[str, Path], *, enterprises: int = 500, seed: int = 7
) -> dict[str, Path]:
    """Write bank/tax/power files into their orgs' data folders; return the file paths."""
    rng = random.Random(seed)
    firms = [(credit_code(rng), rng.random()) for _ in range(enterprises)]
    tax = data_dirs["tax"] / "filings.csv"
    with tax.open("w") as fh:
        fh.write("credit_code,year,revenue_cny,tax_paid_cny,overdue_days\n")
        for code, health in firms:
            for year in (2023, 2024, 2025):
                revenue = int(1e6 * (0.5 + 4 * health) * rng.uniform(0.8, 1.2))
                overdue = 0 if rng.random() < health else rng.randint(1, 120)
                fh.write(f"{code},{year},{revenue},{int(revenue * 0.06)},{overdue}\n")
    power = data_dirs["power"] / "consumption.jsonl"
    with power.open("w") as fh:
        for code, health in firms:
            for month in range(1, 13):
                kwh = int(20_000 * (0.3 + health) * rng.uniform(0.7, 1.3))
                rec = {
                    "credit_code": code,
                    "month": f"2025-{month:02d}",
                    "meter": {"kwh": kwh, "peak_kw": round(kwh / 300, 1)},
                    "arrears_cny": 0 if rng.random() < health else rng.randint(100, 5000),
                }
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    bank = data_dirs["bank"] / "loans.csv"
    with bank.open("w") as fh:
        fh.write("credit_code,loan_cny,defaulted\n")
        for code, health in firms[: enterprises // 2]:
            fh.write(f"{code},{rng.randint(1, 50) * 100_000},{int(rng.random() > health + 0.2)}\n")
    return {"tax": tax, "power": power, "bank": bank}
