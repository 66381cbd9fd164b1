"""End-to-end tests of the enclave process and its host (``tee.enclave``, ``tee.host``), real processes.

Two owners verify the quote (root key, MRENCLAVE recomputed with ``measure``, REPORT_DATA binding,
a fresh block hash), send Arrow tables over the trusted channel through the host, the enclave joins
them in DuckDB, and the result statement, sealed output and release are checked. Attacks: changed SQL,
a tampered frame, frames or a foreign quote before quoting, unapproved release, SQL reaching for
files. A canary planted in one input must never appear in the bytes the host exchanged with the
enclave, while it does reach the requester.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from confide.engines.tee import (
    AttestationKey,
    ChannelSender,
    QuoteRejected,
    SealError,
    SealingRoot,
    SimulatedRoot,
    TransferContext,
    VerifiedQuote,
    make_quote,
    report_data,
    unseal,
    verify_quote,
)
from confide.engines.tee.functions import task_code
from confide.engines.tee.host import EnclaveError, EnclaveHost, EnclaveInfo, RuntimeBuild, measure
from confide.engines.tee.host import isolation_prefix as isolation
from confide.engines.tee.measurement import PACKAGE_DIR, RUNTIME_FILES, locked_deps, runtime_digest
from confide.engines.tee.wire import input_digest, open_release, read_message, sealed_aad, write_message

pytestmark = pytest.mark.slow

TASK = "task-credit-1"
BLOCK = secrets.token_hex(32)
SQL = "SELECT a.k, a.x + b.y AS s, b.note FROM a JOIN b USING (k) ORDER BY a.k"
CANARY = f"CANARY-{secrets.token_hex(12)}"
ROWS = 400


@dataclasses.dataclass
class Platform:
    root: SimulatedRoot
    attestation_key: AttestationKey
    sealing_root: SealingRoot
    build: RuntimeBuild

    def host(self, **kw: Any) -> EnclaveHost:
        return EnclaveHost(self.attestation_key, self.sealing_root, self.build, **kw)


@pytest.fixture(scope="module")
def platform() -> Platform:
    root = SimulatedRoot.generate()
    build = RuntimeBuild.sign(Ed25519PrivateKey.generate(), isv_prod_id=7, isv_svn=2)
    return Platform(root, AttestationKey.create(root), SealingRoot.generate(), build)


def owner_tables() -> dict[str, pa.Table]:
    keys = list(range(ROWS))
    a = pa.table({"k": keys, "x": [10 * k for k in keys]})
    notes = [CANARY if k == 7 else f"note-{k}" for k in range(1, ROWS + 1)]
    b = pa.table({"k": range(1, ROWS + 1), "y": [2 * k for k in range(1, ROWS + 1)], "note": notes})
    return {"a": a, "b": b}


EXPECTED = [{"k": k, "s": 12 * k, "note": CANARY if k == 7 else f"note-{k}"} for k in range(1, ROWS)]


def owner_verifies(platform: Platform, quote: bytes, info: EnclaveInfo, sql: str = SQL) -> VerifiedQuote:
    """What each owner's node does before sending anything: the whole check, independently."""
    bound = report_data(info.channel_public_key, info.result_public_key, TASK, BLOCK)
    return verify_quote(
        quote,
        root_public_key=platform.root.public_key,
        allowed_mrenclaves={measure(sql)},
        allowed_mrsigners={platform.build.mrsigner},
        min_isv_svn=2,
        expected_report_data=bound,
        fresh_block_hashes={BLOCK},
    )


def owner_frames(verified: VerifiedQuote, info: EnclaveInfo, alias: str, table: pa.Table) -> list[bytes]:
    ctx = TransferContext(verified.quote_digest, TASK, f"ds-{alias}", f"{alias}-owner-key")
    return list(ChannelSender(info.channel_public_key, ctx, max_frame=4096).send_batches(table.to_batches()))


@pytest.fixture(scope="module")
def session(platform: Platform) -> dict[str, Any]:
    """One full session with a transcript: quote, verify, two inputs, run, then an unapproved release."""
    host = platform.host(transcript=True)
    quote = host.start(TASK, SQL, BLOCK)
    assert host.info is not None
    verified = owner_verifies(platform, quote, host.info)
    frames = {alias: owner_frames(verified, host.info, alias, t) for alias, t in owner_tables().items()}
    digests = {a: host.feed(f"ds-{a}", f, alias=a, sender_key_id=f"{a}-owner-key") for a, f in frames.items()}
    result = host.run()
    requester = X25519PrivateKey.generate()
    with pytest.raises(EnclaveError) as refused:
        host.release(requester.public_key().public_bytes_raw(), approved=False)
    host.close()
    found = {"host": host, "info": host.info, "verified": verified, "frames": frames, "digests": digests}
    return found | {"result": result, "refused": refused.value}


def test_owner_verifies_quote_of_isolated_enclave(platform: Platform, session: dict[str, Any]) -> None:
    info, verified = session["info"], session["verified"]

    assert verified.mrenclave == measure(SQL) == info.mrenclave
    assert verified.mrsigner == platform.build.mrsigner and verified.tee_type == "simulated"
    assert info.network_isolated == bool(isolation())
    if info.network_isolated:
        assert info.interfaces == ("lo",)


def test_enclave_reports_the_input_digests_owners_compute(session: dict[str, Any]) -> None:
    for alias, frames in session["frames"].items():
        assert len(frames) > 3  # manifest, several data frames, trailer
        assert session["digests"][alias] == input_digest(frames)


def test_result_statement_is_signed_by_the_attested_result_key(session: dict[str, Any]) -> None:
    result, info = session["result"], session["info"]

    result.verify(info.result_public_key)

    assert result.statement == {
        "input_digests": {f"ds-{a}": d.hex() for a, d in session["digests"].items()},
        "output_digest": result.output_digest.hex(),
        "quote_digest": session["verified"].quote_digest.hex(),
        "task_id": TASK,
        "tee_type": "simulated",
        "min_group_size": 0,
        "preview": result.statement["preview"],
    }
    preview = result.statement["preview"]
    assert preview["rows"] == ROWS - 1 and [c["name"] for c in preview["columns"]] == ["k", "s", "note"]
    assert "min_group" not in preview
    assert result.summary == {"columns": ["k", "s", "note"], "rows": ROWS - 1}
    forged = dataclasses.replace(result, statement=result.statement | {"task_id": "other-task"})
    with pytest.raises(InvalidSignature):
        forged.verify(info.result_public_key)


def test_sealed_output_opens_only_under_the_same_measurement(
    platform: Platform, session: dict[str, Any]
) -> None:
    result = session["result"]
    ident = {"mrsigner": platform.build.mrsigner, "isv_svn": 2, "blob": result.sealed}
    aad = sealed_aad(TASK, result.output_digest)

    data = unseal(platform.sealing_root, "mrenclave", mrenclave=measure(SQL), aad=aad, **ident)

    assert hashlib.sha256(data).digest() == result.output_digest
    assert pa.ipc.open_stream(data).read_all().to_pylist() == EXPECTED
    with pytest.raises(SealError):
        unseal(platform.sealing_root, "mrenclave", mrenclave=measure(SQL + " "), aad=aad, **ident)
    with pytest.raises(SealError):
        unseal(
            platform.sealing_root,
            "mrenclave",
            mrenclave=measure(SQL),
            aad=sealed_aad("t2", b"\0" * 32),
            **ident,
        )


def test_release_without_approval_is_refused_and_ends_the_enclave(session: dict[str, Any]) -> None:
    assert session["refused"].code == "release_not_approved"
    assert session["host"].returncode == 2


def test_approved_release_in_a_later_session_reaches_only_the_requester(
    platform: Platform, session: dict[str, Any]
) -> None:
    result, requester = session["result"], X25519PrivateKey.generate()
    with platform.host(transcript=True) as host:  # a new process, same measurement: it unseals
        host.start(TASK, SQL, BLOCK)
        box = host.release(requester.public_key().public_bytes_raw(), approved=True, result=result)

    table = open_release(requester, box, task_id=TASK, output_digest=result.output_digest)

    assert table.to_pylist() == EXPECTED
    assert host.returncode == 0 and host.sent is not None and host.received is not None
    assert CANARY.encode() not in bytes(host.sent + host.received + host.stderr)
    with pytest.raises(ValueError, match="does not open"):
        open_release(X25519PrivateKey.generate(), box, task_id=TASK, output_digest=result.output_digest)


def test_canary_never_crosses_the_pipe_in_plaintext(session: dict[str, Any]) -> None:
    host = session["host"]
    wire = bytes(host.sent) + bytes(host.received) + host.stderr

    assert len(host.received) > len(session["result"].sealed)  # the transcript holds the sealed output
    assert CANARY.encode() not in wire
    assert CANARY.encode("utf-16-le") not in wire


def test_changed_sql_changes_mrenclave_and_the_owner_refuses(platform: Platform) -> None:
    changed = SQL.replace("a.x + b.y", "a.x")

    with platform.host() as host:
        quote = host.start(TASK, changed, BLOCK)
        assert host.info is not None
        with pytest.raises(QuoteRejected) as rejected:
            owner_verifies(platform, quote, host.info)

    assert rejected.value.reason == "mrenclave"
    assert measure(changed) != measure(SQL)


def test_tampered_frame_aborts_the_enclave_without_a_result(platform: Platform) -> None:
    with platform.host() as host:
        quote = host.start(TASK, SQL, BLOCK)
        assert host.info is not None
        frames = owner_frames(owner_verifies(platform, quote, host.info), host.info, "a", owner_tables()["a"])
        frames[2] = frames[2][:-20] + bytes([frames[2][-20] ^ 1]) + frames[2][-19:]

        with pytest.raises(EnclaveError) as aborted:
            host.feed("ds-a", frames, alias="a", sender_key_id="a-owner-key")

        assert aborted.value.code == "channel"
        assert host.returncode == 2 and host.result is None
        with pytest.raises(RuntimeError, match="not running"):
            host.run()


def _raw_enclave(platform: Platform) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """An enclave process driven by hand, to send what an honest host never would."""
    proc = subprocess.Popen(
        [sys.executable, "-I", "-m", "confide.engines.tee.enclave"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    build = platform.build
    hello = {"type": "hello", "task_id": TASK, "task_code": SQL, "block_hash": BLOCK}
    hello |= {"runtime_digest": runtime_digest().hex(), "locked_deps": locked_deps(), "isv_svn": 2}
    hello |= {
        "mrsigner": build.mrsigner.hex(),
        "isv_prod_id": 7,
        "sealing_root": platform.sealing_root.secret.hex(),
    }
    write_message(proc.stdin, hello)
    report = read_message(proc.stdout.read)
    assert report is not None and report[0]["type"] == "report"
    return proc, report[0]


@pytest.mark.parametrize("attack", ["frame_before_quote", "foreign_quote"])
def test_enclave_refuses_frames_before_its_quote_and_quotes_of_others(
    platform: Platform, attack: str
) -> None:
    proc, report = _raw_enclave(platform)
    assert proc.stdin is not None and proc.stdout is not None
    channel_pub = bytes.fromhex(report["channel_pub"])
    if attack == "frame_before_quote":
        ctx = TransferContext(hashlib.sha256(b"a guessed quote").digest(), TASK, "ds-a", "a-owner-key")
        frame = next(iter(ChannelSender(channel_pub, ctx).send_batches(owner_tables()["a"].to_batches())))
        with contextlib.suppress(BrokenPipeError):  # the enclave may already have refused "input"
            write_message(
                proc.stdin, {"type": "input", "alias": "a", "dataset_id": "ds-a", "sender_key_id": "k"}
            )
            write_message(proc.stdin, {"type": "frame"}, frame)
    else:
        other = report_data(channel_pub, bytes(32), TASK, BLOCK)  # not this enclave's result key
        ident = {"mrenclave": bytes.fromhex(report["mrenclave"]), "mrsigner": platform.build.mrsigner}
        quote = make_quote(platform.attestation_key, **ident, isv_prod_id=7, isv_svn=2, report_data=other)
        write_message(proc.stdin, {"type": "quoted"}, quote)

    reply = read_message(proc.stdout.read)

    assert reply is not None and reply[0] == {
        "type": "error",
        "code": "protocol" if "frame" in attack else "quote",
    }
    assert proc.wait(timeout=10) == 2
    with contextlib.suppress(BrokenPipeError):  # unread bytes may still sit in our pipe buffer
        proc.stdin.close()
    proc.stdout.close()


def test_registered_function_runs_and_is_measured_by_its_source(platform: Platform) -> None:
    code = task_code("row_count")
    with platform.host() as host:
        quote = host.start(TASK, code, BLOCK)
        assert host.info is not None
        verified = owner_verifies(platform, quote, host.info, sql=code)
        host.feed(
            "ds-a",
            owner_frames(verified, host.info, "a", owner_tables()["a"]),
            alias="a",
            sender_key_id="a-owner-key",
        )
        result = host.run()

    assert code.startswith("def row_count(") and measure(code) not in (measure(SQL), measure("row_count"))
    assert result.summary == {"columns": ["alias", "rows"], "rows": 1}
    result.verify(host.info.result_public_key)


def test_sql_cannot_reach_files_and_its_error_text_stays_inside(platform: Platform) -> None:
    with platform.host(transcript=True) as host:
        host.start(TASK, "SELECT * FROM read_csv('/etc/hostname')", BLOCK)
        with pytest.raises(EnclaveError) as failed:
            host.run()

    assert failed.value.code == "task_failed" and host.returncode == 2
    assert host.received is not None and b"Permission" not in host.received


def test_measured_files_cover_every_module_the_enclave_adds() -> None:
    probe = (
        "import sys, confide; base = set(sys.modules); import confide.engines.tee.enclave; "
        "new = [m.__file__ for n, m in sys.modules.items() if n not in base and n.startswith('confide')]; "
        "print(' '.join(new))"
    )

    files = subprocess.run(
        [sys.executable, "-I", "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()

    added = {Path(f).relative_to(PACKAGE_DIR).as_posix() for f in files}
    assert added and added <= set(RUNTIME_FILES)
    assert list(RUNTIME_FILES) == sorted(RUNTIME_FILES)


def test_host_refuses_a_build_not_signed_for_this_runtime(platform: Platform) -> None:
    other = dataclasses.replace(platform.build, runtime_digest=hashlib.sha256(b"another runtime").digest())
    stolen = dataclasses.replace(platform.build, signer_public_key=bytes(32))

    with pytest.raises(ValueError, match="signature"):
        EnclaveHost(platform.attestation_key, platform.sealing_root, other)
    with pytest.raises(ValueError, match="signature"):
        EnclaveHost(platform.attestation_key, platform.sealing_root, stolen)


GROUPED = (
    "SELECT a.k % 5 AS bucket, count(*) AS group_size, sum(b.y) AS total FROM a JOIN b USING (k) GROUP BY 1"
)


def _grouped_run(platform: Platform, sql: str, min_group_size: int) -> Any:
    with platform.host() as host:
        quote = host.start(TASK, sql, BLOCK)
        assert host.info is not None
        verified = owner_verifies(platform, quote, host.info, sql)
        for alias, table in owner_tables().items():
            frames = owner_frames(verified, host.info, alias, table)
            host.feed(f"ds-{alias}", frames, alias=alias, sender_key_id=f"{alias}-owner-key")
        return host.run(min_group_size=min_group_size)


def test_output_groups_at_or_above_the_minimum_are_previewed(platform: Platform) -> None:
    result = _grouped_run(platform, GROUPED, 50)

    preview = result.statement["preview"]
    assert result.statement["min_group_size"] == 50
    assert preview["min_group"] == {"required": 50, "smallest": 79}  # 399 joined rows in 5 buckets
    sizes = next(c for c in preview["columns"] if c["name"] == "group_size")
    assert (sizes["min"], sizes["max"], sizes["nulls"]) == (79, 80, 0)


@pytest.mark.parametrize(
    "sql",
    [GROUPED, "SELECT a.k, b.y FROM a JOIN b USING (k)"],  # a group of 79 < 80; no group_size at all
    ids=["group-too-small", "no-group-size"],
)
def test_output_row_below_the_minimum_group_size_is_refused(platform: Platform, sql: str) -> None:
    with pytest.raises(EnclaveError) as refused:
        _grouped_run(platform, sql, 80)

    assert refused.value.code == "below_min_group"
