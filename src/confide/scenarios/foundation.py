"""The foundation demo: three orgs, a catalog, one application and its approval.

A bank, a tax bureau and a power company form a consortium on the embedded
ledger. Each org admin creates a unit and a unit owner; the tax bureau and the
power company register datasets (metadata only: schema, row count, digest);
the bank's analyst applies for the tax bureau's filings and the tax bureau's
unit owner approves, then its org admin (a two-level policy). Later issues
replace this with the full credit scenario on real data.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..crypto import Identity
from ..interfaces import sdk
from ..ledger.local import LocalLedger, OrgSpec, init_workspace

__all__ = ["DEMO_ORGS", "DemoResult", "run_foundation_demo"]

DEMO_ORGS = (
    OrgSpec("bank", "Bank of Example (示例银行)", "91350100M000100Y43"),
    OrgSpec("tax", "Municipal Tax Bureau (市税务局)", None),
    OrgSpec("power", "City Power Supply Co. (市供电公司)", None),
)

TAX_SCHEMA = [
    {"name": "credit_code", "type": "string", "nullable": False, "description": "统一社会信用代码"},
    {"name": "year", "type": "int32", "nullable": False, "description": ""},
    {"name": "revenue_cny", "type": "int64", "nullable": True, "description": "declared revenue"},
    {"name": "tax_paid_cny", "type": "int64", "nullable": True, "description": ""},
    {"name": "overdue_days", "type": "int32", "nullable": True, "description": ""},
]
POWER_SCHEMA = [
    {"name": "credit_code", "type": "string", "nullable": False, "description": "统一社会信用代码"},
    {"name": "month", "type": "string", "nullable": False, "description": "YYYY-MM"},
    {"name": "kwh", "type": "int64", "nullable": True, "description": "consumption"},
    {"name": "arrears_cny", "type": "int64", "nullable": True, "description": ""},
]
DAY_MS = 86_400_000


@dataclass
class DemoResult:
    workdir: Path
    grant_id: str
    steps: list[dict[str, Any]] = field(default_factory=list)


def _digest(label: str) -> str:
    # Stand-in content digests: the connectors that hash real files arrive with the node issue.
    return hashlib.sha256(label.encode()).hexdigest()


def run_foundation_demo(workdir: Path, say: Callable[[str], None] = print) -> DemoResult:
    """Create a fresh workspace in ``workdir`` and play the scenario; returns the grant id."""
    init_workspace(workdir, DEMO_ORGS, chain_id="confide-demo", name="Confide demo consortium")
    led = LocalLedger(workdir)
    chain = led.backend
    try:
        admins = {o.id: led.key(f"{o.id}-admin") for o in DEMO_ORGS}
        owners: dict[str, Identity] = {}
        units = {
            "bank": ("credit", "Credit Risk Dept."),
            "tax": ("collection", "Tax Collection Dept."),
            "power": ("marketing", "Customer Service Dept."),
        }
        for org, (unit, title) in units.items():
            say(f"[{org}] creates unit {unit!r} and its owner key")
            sdk.create_unit(chain, admins[org], unit, title)
            owners[org] = Identity.generate(led.genesis.suite)
            owners[org].save(workdir / "keys" / f"{org}-{unit}-owner.pem")
            sdk.add_member(
                chain, admins[org], owners[org], name=f"{title} owner", roles=["unit_owner"], unit=unit
            )
        analyst = Identity.generate(led.genesis.suite)
        analyst.save(workdir / "keys" / "bank-analyst.pem")
        sdk.add_member(chain, admins["bank"], analyst, name="Bank credit analyst", roles=["analyst"])

        say("[tax] registers 'annual filings' (two approval levels: unit owner, then org admin)")
        sdk.register_dataset(
            chain,
            owners["tax"],
            unit="collection",
            name="filings",
            title="Annual tax filings",
            kind="table",
            schema=TAX_SCHEMA,
            row_count=120_000,
            content_digest=_digest("tax filings v1"),
            tags=["tax", "enterprise"],
            approval_levels=["unit", "org"],
        )
        say("[power] registers 'monthly consumption'")
        sdk.register_dataset(
            chain,
            owners["power"],
            unit="marketing",
            name="consumption",
            title="Monthly power consumption",
            kind="table",
            schema=POWER_SCHEMA,
            row_count=1_440_000,
            content_digest=_digest("power v1"),
            tags=["energy"],
        )

        now = chain.head().time
        say("[bank] analyst applies for tax/collection/filings (TEE only, 3 uses, 30 days)")
        app = sdk.apply_for(
            chain,
            analyst,
            dataset="tax/collection/filings",
            purpose="enterprise credit assessment for loan applicants",
            columns=["credit_code", "year", "revenue_cny", "overdue_days"],
            engines=["tee"],
            expires_at=now + 30 * DAY_MS,
            max_uses=3,
        )
        say("[tax] unit owner approves (level 1 of 2)")
        sdk.approve(chain, owners["tax"], app.tx_id, "unit")
        say("[tax] org admin approves (level 2 of 2) -> grant is live")
        sdk.approve(chain, admins["tax"], app.tx_id, "org")
        return DemoResult(workdir, app.tx_id)
    finally:
        led.close()
