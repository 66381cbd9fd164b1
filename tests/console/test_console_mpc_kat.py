"""Known answers for the console's MPC post-processing (``console/static/mpc.js``): a real crossed
joint-statistics run with the Python engine (two parties and the dealer, in process), then the
browser module under Node.js turns both parties' REVEAL share messages into named statistics and
segment cells. They must equal what the SDK computes from the same shares (``fetch_mpc_result``'s
stats path: ``reveal`` + ``finalize`` + ``_named``, then ``segment_table``), suppressed cells included;
tampered or truncated shares must be refused with an error naming the problem."""

from __future__ import annotations

import json
import math
import subprocess
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import confide.console
from confide.engines.mpc.party import reveal, reveal_message
from confide.engines.mpc.stats import StatsSpec, finalize, joint_stats
from confide.interfaces.mpc import (
    MPC_CODE_DIGEST,
    MPC_LR_CODE_DIGEST,
    REQUESTER,
    _columns,
    _named,
    segment_table,
)
from engines.mpc._mpc_helpers import SESSION, contexts, run_with_dealer

NODE = Path("/usr/bin/node")
MODULE = Path(confide.console.__file__).parent / "static" / "mpc.js"
pytestmark = pytest.mark.skipif(not NODE.exists(), reason="Node.js (/usr/bin/node) is needed to run mpc.js")

CUSTOMERS, SUBSCRIBERS = "bank/retail/customers", "telecom/mobile/subscribers"
G, J, MIN_CELL = 4, 4, 8
# rows per (asset tier i, spend tier j). Layout "bank" (the requester, key owner 0): three cells
# below MIN_CELL, no group or tier. Layout "telecom" (the requester; the bank is party 1 and key
# owner 1): cell (2, 1), the whole asset tier 3 and the whole spend tier 3 below MIN_CELL. Layout
# "plain": group by the asset tier only (no cross key, so no cells); asset tier 3 below MIN_CELL.
SIZES = {
    "bank": [[40, 30, 20, 3], [25, 30, 15, 10], [20, 4, 25, 12], [6, 15, 20, 30]],
    "telecom": [[40, 30, 20, 2], [25, 30, 15, 2], [20, 4, 25, 2], [2, 2, 2, 1]],
    "plain": [[40, 30, 20, 3], [25, 30, 15, 10], [20, 4, 25, 12], [1, 1, 1, 1]],
}

# node kat.mjs <module file URL> <cases.json>: one answer per case ({named, cells} or {error}).
SCRIPT = """
import { readFileSync } from "node:fs";
const mpc = await import(process.argv[2]);
const cases = JSON.parse(readFileSync(process.argv[3], "utf8"));
const unhex = (h) => Uint8Array.from(h.match(/../g) ?? [], (b) => parseInt(b, 16));
const out = cases.map(({ answers, task, orgs }) => {
  try {
    const named = mpc.statsFromShares(answers.map((a) => ({ ...a, share: unhex(a.share) })), task, orgs);
    return { named, cells: task.params.cross_key ? mpc.segmentCells(named, task) : null };
  } catch (exc) {
    return { error: `${exc.name}: ${exc.message}` };
  }
});
process.stdout.write(JSON.stringify(out));
"""


def _task(layout: str) -> tuple[dict[str, Any], list[str]]:
    """A task as the ledger holds it (the marketing scenario's, one more value column each): the
    bank's asset tier is the group key, the telecom's spend tier the cross key (not in "plain")."""
    inputs = [
        {"dataset": CUSTOMERS, "grant": "g-bank", "columns": ["phone", "asset_tier", "assets", "age"]},
        {
            "dataset": SUBSCRIBERS,
            "grant": "g-tel",
            "columns": ["phone", "monthly_spend", "spend_tier", "data_gb"],
        },
    ]
    params = {
        "psi_run": "psi-1",
        "dealer": "exchange",
        "group_key": f"{CUSTOMERS}:asset_tier",
        "n_groups": G,
        "min_cell": MIN_CELL,
    }
    if layout != "plain":
        params |= {"cross_key": f"{SUBSCRIBERS}:spend_tier", "n_cross": J}
    task = {
        "id": "t-1",
        "engine": "mpc",
        "requester_org": "telecom" if layout == "telecom" else "bank",
        "code_digest": MPC_CODE_DIGEST,
        "inputs": inputs,
        "params": params,
    }
    return task, ["bank", "telecom"]


def _run(layout: str) -> dict[str, Any]:
    """The engine's run, each party's table expanded as its node does (``MpcSessions._aligned``).
    Party 0 is the requester's org: the bank (key owner 0) or the telecom (key owner 1)."""
    rng = np.random.default_rng(7)
    sizes = np.array(SIZES[layout])
    tiers = np.array([(i, j) for i in range(G) for j in range(J) for _ in range(sizes[i, j])])
    tiers = tiers[rng.permutation(len(tiers))]
    keys, cross = tiers[:, 0], tiers[:, 1]
    n = len(keys)
    bank_values = np.column_stack([rng.lognormal(11, 1.0, n).round(2), rng.integers(18, 80, n)])
    tel_values = np.column_stack([rng.gamma(3.0, 40.0, n).round(2), rng.gamma(2.0, 3.5, n).round(3)])
    hot_k, hot_j = np.eye(G)[keys], np.eye(J)[cross]
    if layout == "plain":  # the spend tier is just another value column (spend, tier, data)
        bank = bank_values
        tel = np.column_stack([tel_values[:, 0], cross, tel_values[:, 1]]).astype(np.float64)
        levels, n_levels = None, 0
    else:
        bank = (bank_values[:, :, None] * hot_k[:, None, :]).reshape(n, -1)  # v * [key = i]
        tel = np.hstack([hot_j, (tel_values[:, :, None] * hot_j[:, None, :]).reshape(n, -1)])
        levels, n_levels = hot_j.astype(np.int64), J
    key_owner = 1 if layout == "telecom" else 0
    tables = {key_owner: bank, 1 - key_owner: tel}
    spec = StatsSpec(n, tables[0].shape[1], tables[1].shape[1], G, key_owner, n_levels, MIN_CELL)
    ctx = contexts()
    progs = {
        key_owner: joint_stats(ctx[key_owner], spec, bank, keys),
        1 - key_owner: joint_stats(ctx[1 - key_owner], spec, tel, levels=levels),
    }
    res = run_with_dealer(progs)
    shares = {p: reveal_message(SESSION, p, REQUESTER, res[p]) for p in (0, 1)}
    task, orgs = _task(layout)
    # the SDK's answer from the same shares (fetch_mpc_result after the commitment check)
    revealed = reveal(shares, SESSION, REQUESTER, (0, 1), spec.n_outputs)
    named = _named(finalize(spec, revealed), _columns(task, orgs, spec), spec)
    return {
        "spec": spec,
        "shares": shares,
        "task": task,
        "orgs": orgs,
        "named": named,
        "cells": segment_table(named, task) if layout != "plain" else None,
        "sizes": sizes,
    }


def _answers(run: dict[str, Any], shares: dict[int, bytes] | None = None) -> list[dict[str, Any]]:
    record = asdict(run["spec"])  # what a node hands out with its share (Plan.spec_record)
    return [
        {"party": p, "session": SESSION.hex(), "spec": record, "share": share.hex()}
        for p, share in (shares or run["shares"]).items()
    ]


def _node(cases: list[dict[str, Any]], tmp_path: Path) -> list[dict[str, Any]]:
    script, data = tmp_path / "kat.mjs", tmp_path / "cases.json"
    script.write_text(SCRIPT)
    data.write_text(json.dumps(cases))
    done = subprocess.run(
        [str(NODE), str(script), MODULE.as_uri(), str(data)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out: list[dict[str, Any]] = json.loads(done.stdout)
    return out


def _same(got: Any, want: Any, where: str = "") -> None:
    """Counts and flags exactly, floats to 1e-9 (relative or absolute), None in the same places."""
    if want is None or isinstance(want, bool | str):
        assert got == want and type(got) is type(want), f"{where}: {got!r} != {want!r}"
    elif isinstance(want, int):
        assert isinstance(got, int) and not isinstance(got, bool) and got == want, (
            f"{where}: {got!r} != {want}"
        )
    elif isinstance(want, float):
        assert isinstance(got, int | float) and not isinstance(got, bool), f"{where}: {got!r} is not a number"
        assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9), f"{where}: {got!r} != {want!r}"
    elif isinstance(want, dict):
        assert isinstance(got, dict) and list(got) == list(want), f"{where}: keys {list(got)} != {list(want)}"
        for k, v in want.items():
            _same(got[k], v, f"{where}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{where}: {got!r} != {want!r}"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            _same(g, w, f"{where}[{i}]")
    else:
        raise AssertionError(f"{where}: unexpected {type(want)}")


@pytest.fixture(scope="module", params=["bank", "telecom"])
def run(request: pytest.FixtureRequest) -> dict[str, Any]:
    return _run(request.param)


def test_the_module_names_the_sdks_lr_code_digest() -> None:
    assert f'MPC_LR_CODE_DIGEST = "{MPC_LR_CODE_DIGEST}"' in MODULE.read_text()


def test_the_browser_reveals_the_same_statistics_and_segments_as_the_sdk(
    run: dict[str, Any], tmp_path: Path
) -> None:
    named, cells = run["named"], run["cells"]
    sup = named["suppressed"]
    n_small = sum(map(sum, sup["cells"]))
    assert 0 < n_small < G * J  # some cells suppressed, some released
    if run["task"]["requester_org"] == "telecom":  # key owner 1: a whole group and a tier too
        assert sup["groups"] == [False, False, False, True] and sup["levels"] == [False, False, False, True]
        assert named["groups"]["count"][3] is None
    assert sum(1 for c in cells if c.get("suppressed")) == n_small

    (answer,) = _node([{"answers": _answers(run), "task": run["task"], "orgs": run["orgs"]}], tmp_path)
    assert "error" not in answer, answer.get("error")
    _same(answer["named"], named, "named")
    _same(answer["cells"], cells, "cells")
    shown = {(c["asset_tier"], c["spend_tier"]): c["count"] for c in answer["cells"]}
    sizes = run["sizes"]
    for (i, j), count in shown.items():
        assert count == (None if sizes[i, j] < MIN_CELL else sizes[i, j])


def test_a_plain_group_by_with_a_suppressed_group_matches_the_sdk(tmp_path: Path) -> None:
    """No cross key: no cells, the small group's count, sums and its key columns' statistics blanked."""
    run = _run("plain")
    named = run["named"]
    assert named["suppressed"]["groups"] == [False, False, False, True]
    assert named["suppressed"]["cells"] == [[], [], [], []] and "cells" not in named
    assert named["groups"]["count"][3] is None and named["groups"]["sum"][3] == [None] * 3
    (answer,) = _node([{"answers": _answers(run), "task": run["task"], "orgs": run["orgs"]}], tmp_path)
    assert "error" not in answer, answer.get("error")
    assert answer["cells"] is None
    _same(answer["named"], named, "named")


def test_tampered_or_truncated_shares_are_refused_with_the_reason(
    run: dict[str, Any], tmp_path: Path
) -> None:
    good = run["shares"]

    def flip(p: int, at: int, value: int | None = None) -> dict[int, bytes]:
        b = bytearray(good[p])
        b[at] = b[at] ^ 0x01 if value is None else value
        return {**good, p: bytes(b)}

    bad = {
        "wrong session id": flip(1, 8 + 5),  # a session byte
        "addressed 0->9, expected 1->9": flip(1, 6, 0),  # the sender field
        "truncated payload": {**good, 0: good[0][:-8]},
        "truncated header": {**good, 1: good[1][:20]},
        "trailing bytes": {**good, 0: good[0] + b"\0"},
        "unexpected tag": flip(0, 28, 2),  # OPEN, not REVEAL
    }
    cases = [{"answers": _answers(run, s), "task": run["task"], "orgs": run["orgs"]} for s in bad.values()]
    other = dict(run["task"], code_digest=MPC_LR_CODE_DIGEST)
    cases.append({"answers": _answers(run), "task": other, "orgs": run["orgs"]})
    mixed = _answers(run)
    mixed[1]["session"] = bytes(16).hex()
    cases.append({"answers": mixed, "task": run["task"], "orgs": run["orgs"]})
    answers = _node(cases, tmp_path)
    wanted = [*bad, "SS-LR", "different sessions or specs"]
    for want, got in zip(wanted, answers, strict=True):
        assert "error" in got, f"{want}: accepted"
        assert want in got["error"], got["error"]
        assert got["error"].startswith("MpcResultInvalid")
    assert (
        "the shares do not reveal: message from party 1 (step 0, REVEAL): wrong session id"
        in answers[0]["error"]
    )
