"""The credit scenario clicked through the console, as its users would (tests and screenshots).

On a :class:`~confide.console.stage.Stage` (the tax bureau's dataset not yet granted): the bank's
analyst applies for it (a bad form first: each field says what is wrong); the tax bureau's unit owner
approves, then tries the org level it does not hold (refused, with the contract's reason); the tax
bureau's admin approves at the org level; the analyst creates the credit task from the scenario
template and runs it (progress shown); each owner reviews what the bank would get and approves the
release; the analyst gets the result (score distribution, bands, ROC), opens its provenance graph;
the block explorer and the consortium page. ``shot(name)`` is called on each main page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..scenarios.marketing_demo import CUSTOMERS as MK_CUSTOMERS
from ..scenarios.marketing_demo import SUBSCRIBERS as MK_SUBSCRIBERS
from .browser import Browser, ConsoleError
from .stage import MarketingStage, Stage

__all__ = ["MarketingWalk", "Walk", "credit_walkthrough", "marketing_walkthrough"]

TAX = "tax/collection/filings"
TAX_COLUMNS = ("credit_code", "year", "revenue_cny", "tax_paid_cny", "overdue_days")


@dataclass
class Walk:
    """What the walkthrough saw (the tests assert on it)."""

    field_errors: dict[str, str] = field(default_factory=dict)
    refusal: str = ""
    run: str = ""
    charts: list[str] = field(default_factory=list)
    graph_nodes: dict[str, int] = field(default_factory=dict)
    provenance: str = ""
    same_state: str = ""
    texts: dict[str, str] = field(default_factory=dict)


def credit_walkthrough(stage: Stage, b: Browser, shot: Callable[[str], None] = lambda _: None) -> Walk:
    w = Walk()
    bank, tax = stage.console("bank"), stage.console("tax")

    # -- the analyst applies for the tax bureau's filings ---------------------------------------------
    b.sign_in(bank, stage.key("analyst"))
    w.texts["catalog"] = b.by("catalog-tree").text
    shot("catalog")
    b.go(f"#/dataset/{TAX}", "dataset")
    b.click("apply-open")
    form = b.by("apply-form")
    b.fill("in-purpose", "", form)
    b.click("apply-submit")
    for name in ("purpose", "columns"):
        w.field_errors[name] = b.by(f"err-{name}").text
    shot("dataset")
    b.fill("in-purpose", "enterprise credit assessment of loan applicants (企业信用评估)", form)
    for col in TAX_COLUMNS:
        box = form.find_element("css selector", f'input[name="columns"][value="{col}"]')
        if not box.is_selected():
            box.click()
    b.click("apply-submit")
    b.expect_ok(form)

    # -- the tax bureau decides: unit owner, then (refused) the org level, then the admin ------------
    b.sign_in(tax, stage.key("tax-owner"))
    b.go("#/applications", "applications")
    shot("approvals")
    inbox = b.by("inbox")
    b.click("approve", inbox)
    b.expect_ok()
    b.go("#/applications", "applications")
    b.click("approve", b.by("inbox"))  # the org level: not this unit owner's to decide
    kind, text = b.notice()
    if kind != "fail":
        raise ConsoleError(f"a unit owner approved at the org level: {text}")
    w.refusal = text
    b.sign_in(tax, stage.key("tax-admin"))
    b.go("#/applications", "applications")
    b.click("approve", b.by("inbox"))
    b.expect_ok()

    # -- the analyst runs the credit task ---------------------------------------------------------------
    b.sign_in(bank, stage.key("analyst"))
    b.go("#/applications", "applications")
    w.texts["my_applications"] = b.by("my-applications").text
    b.go("#/tasks", "tasks")
    b.choose("in-code-kind", "template:credit")
    shot("new_task")
    b.click("task-submit")
    b.expect_ok(b.by("task-form"))
    b.loaded("task")
    b.click("run-now")
    b.by("run-log")
    b.expect_ok(timeout=180)
    b.loaded("run")
    w.run = str(b.driver.execute_script("return location.hash.split('/').pop()"))
    shot("run")

    # -- every owner reviews and approves the release ---------------------------------------------------
    for person, org in (("tax-owner", "tax"), ("power-owner", "power"), ("bank-owner", "bank")):
        b.sign_in(stage.console(org), stage.key(person))
        b.go(f"#/run/{w.run}", "run")
        review = b.by("owner-review")
        if "digests" not in w.texts:
            w.texts["digests"] = review.find_element("css selector", b.sel("digests")).text
            shot("release_review")
        b.click("release-approve", review)
        b.expect_ok(review)

    # -- the analyst gets the result and its provenance --------------------------------------------------
    b.sign_in(bank, stage.key("analyst"))
    b.go(f"#/run/{w.run}", "run")
    b.click("get-result")
    result = b.by("result")
    b.wait(b.sel("chart-histogram"), 60)
    w.charts = [
        t
        for t in ("chart-histogram", "chart-roc", "chart-bars")
        if result.find_elements("css selector", b.sel(t))
    ]
    w.texts["result"] = result.text
    shot("result")
    b.click("provenance-link")
    b.loaded("provenance")
    b.by("provenance-graph")
    for node in b.all(b.sel("prov-node")):
        kind = node.get_attribute("data-kind") or "?"
        w.graph_nodes[kind] = w.graph_nodes.get(kind, 0) + 1
    w.provenance = b.by("provenance-verified").text
    shot("provenance")

    # -- audit and consortium ----------------------------------------------------------------------------
    b.go("#/audit", "audit")
    shot("audit")
    b.click("block-link")
    b.loaded("block")
    w.texts["block"] = b.by("block-verified").text
    b.go("#/consortium", "consortium")
    w.same_state = b.by("same-state").text
    shot("consortium")
    return w


def summary(w: Walk) -> dict[str, Any]:
    return {"run": w.run, "charts": w.charts, "graph": w.graph_nodes, "refusal": w.refusal}


@dataclass
class MarketingWalk:
    psi_run: str = ""
    mpc_run: str = ""
    cells: dict[tuple[int, int], str] = field(default_factory=dict)


def marketing_walkthrough(
    stage: MarketingStage, b: Browser, shot: Callable[[str], None] = lambda _: None
) -> MarketingWalk:
    """The marketing scenario in the console: the bank's analyst creates and runs a psi task (both
    nodes keep the intersection), then an mpc joint-statistics task aligned on it (asset tier x spend
    tier, the exchange as dealer); both owners approve the release; the analyst gets the segment
    heat maps (both parties' shares opened and revealed in the browser)."""
    w = MarketingWalk()
    bank = stage.console("bank")
    b.sign_in(bank, stage.key("analyst"))
    b.go("#/tasks", "tasks")
    b.choose("in-engine", "psi")
    b.choose("in-output", "both")
    b.click("task-submit")
    b.expect_ok(b.by("task-form"))
    b.loaded("task")
    b.click("run-now")
    b.expect_ok(timeout=180)
    b.loaded("run")
    w.psi_run = str(b.driver.execute_script("return location.hash.split('/').pop()"))

    b.go("#/tasks", "tasks")
    b.choose("in-engine", "mpc")
    b.choose("in-psi_run", w.psi_run)
    b.choose("in-dealer", "exchange")
    form = b.by("task-form")
    for dataset, cols in (
        (MK_CUSTOMERS, ("asset_tier", "assets")),
        (MK_SUBSCRIBERS, ("monthly_spend", "spend_tier")),
    ):
        grant = form.find_element(
            "xpath", f".//div[contains(@class,'input-row')][.//label[contains(., '{dataset}')]]"
        )
        for col in cols:
            grant.find_element("css selector", f'input[type="checkbox"][value="{col}"]').click()
    b.choose("in-group_key", f"{MK_CUSTOMERS}:asset_tier")
    b.choose("in-cross_key", f"{MK_SUBSCRIBERS}:spend_tier")
    shot("mpc_task")
    b.click("task-submit")
    b.expect_ok(form)
    b.loaded("task")
    b.click("run-now")
    b.expect_ok(timeout=180)
    b.loaded("run")
    w.mpc_run = str(b.driver.execute_script("return location.hash.split('/').pop()"))

    for person, org in (("bank-owner", "bank"), ("telecom-owner", "telecom")):
        b.sign_in(stage.console(org), stage.key(person))
        b.go(f"#/run/{w.mpc_run}", "run")
        review = b.by("owner-review")
        b.click("release-approve", review)
        b.expect_ok(review)

    b.sign_in(bank, stage.key("analyst"))
    b.go(f"#/run/{w.mpc_run}", "run")
    b.click("get-result")
    chart = b.wait(b.sel("segments-count") + " " + b.sel("chart-heatmap"), 60)
    for c in chart.find_elements("css selector", "[data-row]"):
        w.cells[(int(c.get_attribute("data-row") or -1), int(c.get_attribute("data-col") or -1))] = c.text
    shot("segments")
    return w
