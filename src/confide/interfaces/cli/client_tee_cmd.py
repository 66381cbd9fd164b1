"""``confide client`` tee runs: submit a task, run it in the enclave, review, release, fetch, verify.

Requester::

    confide client task-submit --input tax/collection/filings=<grant>:credit_code,revenue --sql-file q.sql
    confide client tee-run <task>
    confide client result <run> --out scores.parquet          # once every owner approved
    confide client provenance <run>

Each input's owner, on its own org's node::

    confide client release-preview <run> <dataset>
    confide client release-approve <run> <dataset>            # or release-reject ... --reason
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import typer
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from ...engines.tee.functions import FUNCTIONS, task_code
from .. import sdk
from ..client import ApiCallError, Client
from ..tee import TeeRunFailed, approve_release, fetch_result, recipient_public, release_preview, run_tee_task
from ._common import console, err_console, fail, print_json

__all__ = ["client_app"]

from ._client_common import (
    JsonOpt,
    KeyOpt,
    MinHeightOpt,
    NodeOpt,
    SuiteOpt,
    _connect,
    api_friendly,
    client_app,
)

P = ParamSpec("P")
R = TypeVar("R")

_DATASET = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}(/[a-z0-9][a-z0-9_-]{0,62}){2}$")  # as the contract's
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_INPUT_EXAMPLE = "--input tax/collection/filings=<grant id>:credit_code,revenue"

# What to do about the errors of the tee endpoints; consulted before the generic client hints.
_TEE_HINTS = {
    "NOT_A_HOST": "this node hosts no enclave (no tee_dir in its node.json); use a node of an "
    "enclave-host org (--node / CONFIDE_NODE_URL)",
    "HOST_MISCONFIGURED": "the host's enclave files (tee_dir) are unusable; its operator reads the node log",
    "UNKNOWN_TASK": "check the task id; if you just submitted it, retry with --min-height <its block>",
    "UNKNOWN_RUN": "check the run id; if it is new, the node has not applied it yet: retry with "
    "--min-height <block>",
    "UNKNOWN_SESSION": "the enclave session expired or the host restarted; start a new run: "
    "confide client tee-run <task>",
    "NOT_TEE": "submit the task with engine tee: confide client task-submit",
    "NOT_REQUESTER": "only the key that submitted the task runs it and fetches its result "
    "(--key / CONFIDE_KEY)",
    "TASK_NOT_ACTIVE": "the task can no longer run; submit a new one with confide client task-submit",
    "ENCLAVE_FAILED": "the host could not start the enclave; its operator reads the node log",
    "WRONG_ENCLAVE": "the run names another enclave than the session's; start a new run",
    "NOT_ATTESTED": "this run names no attested enclave; start tee runs with confide client tee-run",
    "NO_TEE_POLICY": "the consortium genesis names no attestation root; tee runs need a consortium made "
    "by 'confide consortium init'",
    "QUOTE_REJECTED": "an owner's node did not trust the enclave's quote (see the reason); start a new run; "
    "if it persists, the host's runtime or platform files do not match the genesis",
    "NO_PEER": "the host has no link to that owner's node: add it to 'peers' in the host's node.json",
    "PEER_UNREACHABLE": "the owner's node is down or unreachable from the host; start a new run once "
    "it is up",
    "NO_RECIPIENT": "the task names no result key; submit it with confide client task-submit, which sets one",
    "NO_OUTPUT": "ask the node that hosted the run (the org named in the run's attestation, --node)",
    "WRONG_OUTPUT": "the host's sealed output is not the approved one; its operator checks tee_dir/sealed",
    "ENCLAVE_BELOW_MIN_GROUP": "every output row must aggregate at least the inputs' minimum group size "
    "(an integer group_size column); change the code and submit a new task",
    "ENCLAVE_TASK_FAILED": "check the code: inputs are tables named after the dataset's last id segment "
    "and hold only the granted columns; submit a corrected task",
    "ENCLAVE_CHANNEL": "the inputs were damaged in transit; start a new run",
    "ENCLAVE_SEAL": "the sealed output does not open under this enclave's measurement; run the task again",
    "NOT_THE_HOST": "only the node of the org hosting the run's enclave asks owners for inputs",
    "ALREADY_SENT": "each input goes to a run once; start a new run",
    "RUN_TOO_OLD": "the run started too long ago; start a new run",
    "GRANT_REFUSED": "the grant no longer allows this use (revoked, expired or used up); apply again",
}


def _tee_hint(code: str, message: str, run: str = "<run>") -> str | None:
    approve = f"confide client release-approve {run} <dataset>"
    if code == "NOT_FOUND" and message.startswith(("task/", "run/", "release/")):
        what = message.split("/", 1)[0]
        return (
            f"check the {what} id (task-submit and tee-run print them); if it is new, this node has not "
            "applied it yet: retry with --min-height <its block>"
        )
    if code == "NOT_RELEASED":
        if " rejected " in f"{message} ":
            return "an owner rejected the release; this run's result is never released"
        waiting = message.partition("waiting for ")[2].strip()
        if waiting:
            return (
                f"still waiting for the owners of {waiting} to approve; each approves on its own org's "
                f"node with: {approve}"
            )
        return f"the run has no pending release (did it succeed?); owners approve with: {approve}"
    if code == "OWNER_REFUSED":
        for inner in ("QUOTE_REJECTED", "GRANT_REFUSED", "RUN_TOO_OLD", "ALREADY_SENT"):
            if inner in message:
                return _TEE_HINTS[inner]
        return "an owner's node refused to send its input (see the reason); fix that, then start a new run"
    return _TEE_HINTS.get(code)


def _tee_friendly(fn: Callable[P, R]) -> Callable[P, R]:
    """:func:`api_friendly`, with the tee endpoints' error codes explained first."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except ApiCallError as exc:
            run = kwargs.get("run")
            hint = _tee_hint(exc.code, exc.message, *([run] if isinstance(run, str) else []))
            if hint is None:
                raise
            fail(escape(f"{exc.code}: {exc.message}"), hint)
        raise AssertionError("unreachable")

    return api_friendly(wrapper)


# -- task-submit -----------------------------------------------------------------------------------


def _parse_input(spec: str) -> dict[str, Any]:
    dataset, eq, rest = spec.partition("=")
    grant, colon, cols = rest.partition(":")
    dataset, grant = dataset.strip(), grant.strip().lower()
    columns = [c.strip() for c in cols.split(",") if c.strip()]
    if not eq or not colon:
        fail(f"--input {escape(spec)!r} is not DATASET=GRANT:COLUMNS", f"example: {_INPUT_EXAMPLE}")
    if not _DATASET.match(dataset):
        fail(f"--input: {escape(dataset)!r} is not a dataset id org/unit/name", f"example: {_INPUT_EXAMPLE}")
    if not _HEX64.match(grant):
        fail(
            f"--input: grant {escape(grant)!r} of {escape(dataset)} is not an application id (64 hex)",
            "'confide client applications --status approved' lists your grants",
        )
    if not columns:
        fail(f"--input: no columns given for {escape(dataset)}", f"example: {_INPUT_EXAMPLE}")
    return {"dataset": dataset, "grant": grant, "columns": columns}


def _param_value(text: str) -> str | int | bool | None:
    if text in ("true", "false"):
        return text == "true"
    if text == "null":
        return None
    if re.fullmatch(r"-?[0-9]{1,18}", text):
        return int(text)
    return text


def _parse_params(pairs: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs:
        k, eq, v = pair.partition("=")
        k = k.strip()
        if not eq or not k:
            fail(f"--param {escape(pair)!r} is not KEY=VALUE", "example: --param year=2025")
        if k == "recipient":
            fail(
                "--param recipient is set for you: the result key derived from your --key",
                "drop --param recipient",
            )
        params[k] = _param_value(v)
    return params


def _task_code(sql_file: Path | None, sql: str | None, function: str | None) -> str:
    given = [flag for flag, v in (("--sql-file", sql_file), ("--sql", sql), ("--function", function)) if v]
    if len(given) != 1:
        fail(
            "give exactly one of --sql-file, --sql or --function"
            + (f" (got {', '.join(given)})" if given else ""),
            "SQL runs on the inputs as tables named after each dataset's last id segment; "
            f"functions: {', '.join(sorted(FUNCTIONS))}",
        )
    if function is not None:
        if function not in FUNCTIONS:
            fail(
                f"unknown enclave function {escape(function)!r}",
                f"registered functions: {', '.join(sorted(FUNCTIONS))}",
            )
        return task_code(function)
    if sql_file is not None:
        try:
            code = sql_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"cannot read --sql-file {escape(str(sql_file))}: {escape(str(exc))}")
    else:
        code = str(sql)
    if not code.strip():
        fail("the SQL is empty", "give the query with --sql or --sql-file")
    return code


@client_app.command("task-submit")
@_tee_friendly
def task_submit(
    inputs: list[str] = typer.Option(
        ..., "--input", help="DATASET=GRANT:col1,col2 (repeat for each input); GRANT is your application id."
    ),
    sql_file: Path | None = typer.Option(None, "--sql-file", help="File with the SQL the enclave runs."),
    sql: str | None = typer.Option(None, "--sql", help="The SQL the enclave runs."),
    function: str | None = typer.Option(
        None, "--function", help=f"A registered enclave function: {', '.join(sorted(FUNCTIONS))}."
    ),
    params: list[str] = typer.Option(
        [], "--param", help="Task parameter KEY=VALUE (repeatable; integers and true/false are typed)."
    ),
    node: str | None = NodeOpt,
    key: Path | None = KeyOpt,
    suite: str = SuiteOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Submit a tee task: its code goes on the ledger, its result is encrypted to your key only."""
    parsed = [_parse_input(s) for s in inputs]
    seen = [p["dataset"] for p in parsed]
    if len(set(seen)) != len(seen):
        fail("--input names a dataset twice", "give each input dataset once, with all its columns")
    extra = _parse_params(params)
    code = _task_code(sql_file, sql, function)
    with _connect(node, key, suite) as c:
        extra["recipient"] = recipient_public(c.identity)
        r = sdk.submit_task(c.ledger, c.identity, engine="tee", inputs=parsed, code=code, params=extra)
    if as_json:
        print_json({"task": r.tx_id, "height": r.height, "inputs": parsed, "params": extra})
        return
    console.print(f"task {r.tx_id} submitted in block {r.height}")
    console.print(f"  next: confide client tee-run {r.tx_id} --min-height {r.height}")


# -- tee-run ---------------------------------------------------------------------------------------


def _print_preview(preview: dict[str, Any] | None) -> None:
    if not preview:
        console.print("  [yellow]no signed preview[/]: the run did not finish with a result")
        return
    console.print(f"  rows     {preview.get('rows')}")
    table = Table("column", "type", "nulls", "min", "max", "mean")
    for col in preview.get("columns", []):
        table.add_row(
            escape(str(col.get("name"))),
            escape(str(col.get("type"))),
            str(col.get("nulls", "")),
            *(escape(str(col[k])) if col.get(k) is not None else "" for k in ("min", "max", "mean")),
        )
    console.print(table)
    for k, v in (preview.get("metrics") or {}).items():
        console.print(f"  metric   {escape(str(k))}: {escape(str(v))}")
    mg = preview.get("min_group")
    if mg:
        console.print(f"  min group size required {mg.get('required')}, smallest group {mg.get('smallest')}")


@client_app.command("tee-run")
@_tee_friendly
def tee_run(
    task: str = typer.Argument(..., help="Task id (64 hex) from task-submit."),
    min_height: int = MinHeightOpt,
    node: str | None = NodeOpt,
    key: Path | None = KeyOpt,
    suite: str = SuiteOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Run a tee task in an enclave hosted by --node (your org's); the run is on the ledger either way."""
    with _connect(node, key, suite) as c:
        c.last_height = min_height
        try:
            out = run_tee_task(c, task, say=lambda s: err_console.print(f"  [dim]{escape(s)}[/]"))
        except TeeRunFailed as exc:
            if as_json:
                print_json({"run": exc.run, "status": "failed", "code": exc.code, "message": exc.message})
            fail(
                escape(f"run {exc.run} failed: {exc.code}: {exc.message}"),
                (_tee_hint(exc.code, exc.message) or "read the reason above")
                + " (the run is recorded failed on the ledger)",
            )
    st = out["statement"]
    if as_json:
        print_json(
            {
                "run": out["run"],
                "height": out["height"],
                "output_digest": st["output_digest"],
                "tee_type": st.get("tee_type"),
                "preview": st.get("preview"),
                "attestation": out["attestation"],
            }
        )
        return
    console.print(
        f"run {out['run']} finished in block {out['height']} ({escape(str(st.get('tee_type')))} TEE)"
    )
    console.print(f"  output digest {st['output_digest']}")
    console.print("  signed preview (what every input owner reviews before approving):")
    _print_preview(st.get("preview"))
    console.print(
        f"  next: each input owner, on its own org's node: confide client release-preview {out['run']} "
        "<dataset>, then release-approve"
    )
    console.print(f"  then: confide client result {out['run']} --out result.parquet")


# -- owners: preview, approve, reject ---------------------------------------------------------------


@client_app.command("release-preview")
@_tee_friendly
def release_preview_cmd(
    run: str = typer.Argument(..., help="Run id (64 hex)."),
    dataset: str = typer.Argument(..., help="Your input dataset org/unit/name."),
    min_height: int = MinHeightOpt,
    node: str | None = NodeOpt,
    key: Path | None = KeyOpt,
    suite: str = SuiteOpt,
    as_json: bool = JsonOpt,
) -> None:
    """What a release would give the requester: the code, the enclave's signed preview, your input digest.

    --node is your own org's node: it recorded what it sent. Exit code 1 when it sent nothing for
    this run or the enclave reports another input digest (then do not approve).
    """
    with _connect(node, key, suite) as c:
        c.last_height = min_height
        p = release_preview(c, run, dataset)
        rel = _release(c, run)
    sent, received = p["input_digest_sent"], p["input_digest_received"]
    match = sent is not None and sent == received
    if as_json:
        print_json(p | {"digests_match": match, "release": rel})
    else:
        status = str(rel.get("status", "not requested"))
        console.print(f"[bold]run {run}[/], input {escape(dataset)}; release is {escape(status)}")
        console.print(Panel(escape(p["code"]), title="code that ran", title_align="left", expand=False))
        console.print("signed preview of the output:")
        _print_preview(p["preview"])
        if p["min_group_size"]:
            console.print(f"  minimum group size enforced by the enclave: {p['min_group_size']}")
        console.print(f"  input digest your node sent       {sent or '-'}")
        console.print(f"  input digest the enclave reports  {received or '-'}")
        if match:
            console.print("  [bold green]match[/]: the enclave computed on exactly what your node sent")
    if sent is None:
        fail(
            f"this node never sent {escape(dataset)} for run {run[:16]}",
            "ask your own org's node (--node), the one that owns the dataset",
        )
    if not match:
        fail(
            "the enclave reports another input digest than the one your node sent",
            f"do not approve; reject with: confide client release-reject {run} {dataset} --reason ...",
        )


@client_app.command("release-approve")
@_tee_friendly
def release_approve(
    run: str = typer.Argument(..., help="Run id (64 hex)."),
    dataset: str = typer.Argument(..., help="Your input dataset org/unit/name."),
    min_height: int = MinHeightOpt,
    node: str | None = NodeOpt,
    key: Path | None = KeyOpt,
    suite: str = SuiteOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Approve the release of a run's result, naming the input digest your node sent."""
    with _connect(node, key, suite) as c:
        c.last_height = min_height
        try:
            r = approve_release(c, run, dataset)
        except ValueError as exc:
            fail(escape(str(exc)), "approve through your own org's node (--node), the one that sent the data")
        rel = _release(c, run)
    _decided(run, dataset, "approved", r.height, rel, as_json)


@client_app.command("release-reject")
@_tee_friendly
def release_reject(
    run: str = typer.Argument(..., help="Run id (64 hex)."),
    dataset: str = typer.Argument(..., help="Your input dataset org/unit/name."),
    reason: str = typer.Option(..., "--reason", help="Why the result must not be released."),
    node: str | None = NodeOpt,
    key: Path | None = KeyOpt,
    suite: str = SuiteOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Reject the release of a run's result; it is then never released."""
    with _connect(node, key, suite) as c:
        r = sdk.decide_release(c.ledger, c.identity, run, dataset, "reject", reason=reason)
        rel = _release(c, run)
    _decided(run, dataset, "rejected", r.height, rel, as_json)


def _release(c: Client, run: str) -> dict[str, Any]:
    """The run's release record, or ``{}`` when it has none (a failed run)."""
    try:
        return dict(c.query(f"release/{run}"))
    except ApiCallError as exc:
        if exc.code != "NOT_FOUND":
            raise
        return {}


def _decided(run: str, dataset: str, what: str, height: int, rel: dict[str, Any], as_json: bool) -> None:
    waiting = sorted(set(rel.get("required", ())) - set(rel.get("decisions", {})))
    if as_json:
        print_json(
            {
                "run": run,
                "dataset": dataset,
                "height": height,
                "status": rel.get("status"),
                "waiting": waiting,
            }
        )
        return
    console.print(f"{what} the release of {escape(dataset)} for run {run[:16]} in block {height}")
    status = str(rel.get("status", "not requested"))
    more = f"; waiting for {escape(', '.join(waiting))}" if waiting and status == "pending" else ""
    console.print(f"  release is now {escape(status)}{more}")


# -- requester: result, provenance -------------------------------------------------------------------


@client_app.command("result")
@_tee_friendly
def result(
    run: str = typer.Argument(..., help="Run id (64 hex)."),
    out: Path = typer.Option(..., "--out", help="Where to write the table: a .parquet or .csv file."),
    min_height: int = MinHeightOpt,
    node: str | None = NodeOpt,
    key: Path | None = KeyOpt,
    suite: str = SuiteOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Fetch a released result from the host, decrypt it with your key, check it and write it to a file."""
    kind = out.suffix.lower()
    if kind not in (".parquet", ".csv"):
        fail(
            f"--out {escape(str(out))}: unknown file type {escape(kind or '(none)')!r}",
            "use a .parquet or .csv file",
        )
    if not out.parent.is_dir():
        fail(
            f"--out: folder {escape(str(out.parent))} does not exist", "create it first or pick another path"
        )
    with _connect(node, key, suite) as c:
        c.last_height = min_height
        table = _fetch(c, run)
    try:
        if kind == ".parquet":
            pq.write_table(table, out)
        else:
            pa_csv.write_csv(table, out)
    except (OSError, pa.ArrowException) as exc:
        fail(f"cannot write {escape(str(out))}: {escape(str(exc))}")
    if as_json:
        print_json({"run": run, "rows": table.num_rows, "columns": table.column_names, "path": str(out)})
        return
    console.print(
        f"wrote {table.num_rows:,} rows ({escape(', '.join(table.column_names))}) to {escape(str(out))}"
    )


def _fetch(c: Client, run: str) -> pa.Table:
    try:
        return fetch_result(c, run)
    except ValueError as exc:  # the box does not open or does not match the output digest on the ledger
        fail(
            f"the released result does not check out: {escape(str(exc))}",
            "it was not written; use the key that submitted the task (--key) and report this to the host",
        )
    raise AssertionError("unreachable")


@client_app.command("provenance")
@_tee_friendly
def provenance(
    run: str = typer.Argument(..., help="Run id (64 hex)."),
    min_height: int = MinHeightOpt,
    node: str | None = NodeOpt,
    key: Path | None = KeyOpt,
    suite: str = SuiteOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Have --node re-verify a tee result from its own blocks: grants, code, quote, statement, approvals.

    Exit code 0 when every check passed, 1 otherwise.
    """
    with _connect(node, key, suite) as c:
        params = {"min_height": min_height} if min_height >= 0 else None
        report = c.call("GET", f"/v1/tee/provenance/{run}", params=params)
    if as_json:
        print_json(report)
    else:
        console.print(
            f"provenance of run {run[:16]} re-verified by the {escape(str(report.get('node')))} node at "
            f"height {report.get('height')} ({escape(str(report.get('tee_type')))} TEE)"
        )
        console.print(f"  output digest {report.get('output_digest')}")
        for ch in report.get("checks", []):
            mark = "[green]ok  [/]" if ch["ok"] else "[bold red]FAIL[/]"
            console.print(f"  {mark} {escape(ch['check'])}: {escape(ch.get('detail', ''))}")
        table = Table("block", "tx type", "what", "signer org")
        for step in sorted(report.get("chain", []), key=lambda s: s.get("height", -1)):
            found = step.get("found", True)
            table.add_row(
                str(step.get("height", "-")),
                escape(str(step.get("type", "not found" if not found else ""))),
                escape(str(step.get("what", ""))),
                escape(str(step.get("signer_org") or "?")),
            )
        console.print(table)
    if report.get("verified") is not True:
        failed = [ch["check"] for ch in report.get("checks", []) if not ch["ok"]]
        fail(
            escape(f"provenance NOT verified: {', '.join(failed) or 'no checks'} failed"),
            "do not trust this result; the failed checks say which record does not hold",
        )
    if not as_json:
        console.print("[bold green]verified[/]: every check passed on this node's own chain copy")
