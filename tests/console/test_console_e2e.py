"""The web console in a real headless Chromium (Debian's chromium + chromedriver), on three org nodes.

The whole credit scenario is clicked through in Chinese and in English
(``confide.console.walkthrough``): the bank's analyst applies for the tax bureau's dataset, the tax
bureau approves at two levels (a unit owner's try at the org level is refused with the contract's
reason), the analyst creates and runs the credit task, every owner reviews and approves the
release, the analyst sees the result charts and opens the provenance graph, the block explorer and
the consortium page. Also: the browser's canonical JSON and signature base equal the Python ones,
sign-in refuses strangers, other orgs' members and non-keys, and the console's security headers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.common.exceptions import StaleElementReferenceException

from confide.console.browser import chromium
from confide.console.stage import Stage, start_stage
from confide.console.walkthrough import credit_walkthrough
from confide.crypto import Identity
from confide.crypto.canonical import canonical_bytes
from confide.crypto.httpsig import _base

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

EXPECT = {
    "zh-CN": {
        "required": "必填。",
        "pick_one": "至少选择一项。",
        "refused": "操作被拒绝：您的角色无权执行此操作",
        "verified": "已在本节点的区块上重新验证",
        "same_state": "所有节点报告相同的状态根",
        "match": "一致",
        "nav": "数据目录",
        "block": "区块已验证",
    },
    "en-US": {
        "required": "Required.",
        "pick_one": "Pick at least one.",
        "refused": "Refused: your role may not do this",
        "verified": "Re-verified from this node's own blocks",
        "same_state": "Every node reports the same state root",
        "match": "match",
        "nav": "Catalog",
        "block": "Block verified",
    },
}


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    s = start_stage(tmp_path_factory.mktemp("console") / "consortium", enterprises=400, say=lambda _: None)
    yield s
    s.net.stop_all()


@pytest.mark.parametrize("lang", ["zh-CN", "en-US"])
def test_the_credit_scenario_end_to_end_in_the_browser(stage: Stage, lang: str) -> None:
    exp = EXPECT[lang]
    with chromium(lang) as b:
        w = credit_walkthrough(stage, b)
        nav = b.by("nav-catalog").text
        errors = b.console_errors()

    assert nav == exp["nav"]  # the browser asked for this language and got it
    assert w.field_errors == {"purpose": exp["required"], "columns": exp["pick_one"]}  # next to the field
    assert w.refusal.startswith(exp["refused"]) and "may not decide at level 'org'" in w.refusal
    assert "Traceback" not in w.refusal
    assert w.texts["digests"] == exp["match"]  # the owner's node sent what the enclave received
    assert w.charts == ["chart-histogram", "chart-roc", "chart-bars"]
    assert w.graph_nodes == {"dataset": 3, "grant": 3, "task": 1, "run": 1, "approval": 3, "release": 1}
    assert w.provenance.startswith("✓ " + exp["verified"])
    assert exp["same_state"] in w.same_state and exp["block"] in w.texts["block"]

    # what the browser did is on the ledger, as any node reads it
    analyst = stage.people["analyst"]
    run = analyst.query(f"run/{w.run}")
    release = analyst.query(f"release/{w.run}")
    assert run["status"] == "succeeded" and release["status"] == "released"
    assert sorted(release["decisions"]) == [
        "bank/credit/loans",
        "power/service/consumption",
        "tax/collection/filings",
    ]
    task = analyst.query(f"task/{run['task']}")
    assert task["requester"] == analyst.identity.key_id and task["engine"] == "tee"
    assert "def credit_score" in task["code"]
    # the result table was decrypted in the browser: its credit codes are on the page
    assert w.texts["result"].count("91350") >= 10
    # the browser logged only the refusals the walkthrough provoked, no script error
    unexpected = [e for e in errors if not (" 409 " in e or " 403 " in e)]
    assert unexpected == []


def _in_browser(b: Any, script: str, *args: Any) -> Any:
    """Run an async snippet with the console's modules loaded; it calls done(value)."""
    wrapped = "const done = arguments[arguments.length - 1]; const args = arguments; " + script
    return b.driver.execute_async_script(wrapped, *args)


def test_the_browsers_canonical_json_and_signature_base_equal_pythons(stage: Stage) -> None:
    vector = {
        "z": [1, -2, 9007199254740991, True, False, None],
        "a": {"é": 'ünïcødé \u2028 \u0007 "q" \\', "\U0001f600": "smile", "\uffff": "bmp-last"},
        "": "",
        "nested": [{"b": 1, "a": [{}]}],
    }
    with chromium("en-US") as b:
        b.open(stage.console("bank"))
        b.loaded("signin")
        canonical = _in_browser(b, "import('./api.js').then((m) => done(m.canonical(args[0])));", vector)
        base = _in_browser(
            b,
            "import('./api.js').then((m) => "
            "done(m.signatureBase('post', '/v1/txs', 'a=1', 'sha-256=:x:', 'p')));",
        )
    assert canonical.encode("utf-8") == canonical_bytes(vector)
    assert base.encode("utf-8") == _base("post", "/v1/txs", "a=1", "sha-256=:x:", "p")


def test_sign_in_refuses_strangers_other_orgs_and_non_keys(stage: Stage, tmp_path: Path) -> None:
    stranger = Identity.generate().save(tmp_path / "stranger.pem")
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key\n")
    with chromium("en-US") as b:
        for key, expected in (
            (stranger, "not an active member"),
            (stage.key("tax-owner"), "You belong to org tax; this is bank's node"),
            (junk, "not a PKCS#8 PEM private key"),
        ):
            b.open(stage.console("bank") + "#/signin")
            b.loaded("signin")
            b.wait('input[type="file"]').send_keys(str(key))
            b.click("signin")
            # the same URL may not reload the page: wait for this key's refusal, not the last one's
            deadline, text = time.monotonic() + 15, ""
            while expected not in text and time.monotonic() < deadline:
                try:
                    text = b.by("err-key").text
                except StaleElementReferenceException:  # re-rendered between finding and reading
                    text = ""
                time.sleep(0.05)
            assert expected in text, text
            assert b.all(b.sel("whoami")) == []  # not signed in


def test_console_headers_and_the_api_behind_it(stage: Stage) -> None:
    base = stage.console("bank").removesuffix("/console/")
    page = httpx.get(base + "/console/")
    assert page.status_code == 200 and "app.js" in page.text
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert httpx.get(base + "/", follow_redirects=False).headers["location"] == "/console/"
    # the console's listener serves the same API with the same authentication: unsigned is refused
    refused = httpx.get(base + "/v1/query/catalog")
    assert refused.status_code == 401 and json.loads(refused.text)["error"]["code"] == "UNAUTHENTICATED"
    assert httpx.get(base + "/v1/health").json()["org"] == "bank"


def test_every_form_rejects_bad_input_next_to_the_field_and_sends_nothing(stage: Stage) -> None:
    analyst = stage.people["analyst"]
    before = len(analyst.query(f"applications?applicant={analyst.identity.key_id}"))
    tasks_before = len(analyst.query(f"tasks?requester={analyst.identity.key_id}"))
    with chromium("en-US") as b:
        b.sign_in(stage.console("bank"), stage.key("analyst"))
        b.go("#/dataset/tax/collection/filings", "dataset")
        b.click("apply-open")
        form = b.by("apply-form")
        b.fill("in-purpose", "a purpose", form)
        form.find_element("css selector", 'input[name="engines"][value="tee"]').click()  # untick: none left
        b.fill("in-max_uses", "0", form)
        b.driver.execute_script("arguments[0].value = '2020-01-01'", b.by("in-expires_at"))
        b.click("apply-submit")
        errors = {n: b.by(f"err-{n}").text for n in ("columns", "engines", "max_uses", "expires_at")}
        assert errors == {
            "columns": "Pick at least one.",
            "engines": "Pick at least one.",
            "max_uses": "A whole number from 1 to 1,000,000.",
            "expires_at": "The expiry date must be after today.",
        }
        assert b.all(b.sel("err-purpose"))[0].text == ""  # the good field is not flagged

        b.go("#/tasks", "tasks")
        b.choose("in-code-kind", "sql")
        b.choose("in-schedule", "cron")
        b.fill("in-cron", "every night")
        for box in b.all('input[name="inputs"]'):
            if box.is_selected():
                box.click()
        b.click("task-submit")
        errors = {n: b.by(f"err-{n}").text for n in ("sql", "cron", "inputs")}
        assert errors == {
            "sql": "Write the SQL.",
            "cron": "A cron expression has 5 fields, e.g. 0 2 * * *.",
            "inputs": "Pick at least one.",
        }
    assert len(analyst.query(f"applications?applicant={analyst.identity.key_id}")) == before
    assert len(analyst.query(f"tasks?requester={analyst.identity.key_id}")) == tasks_before
