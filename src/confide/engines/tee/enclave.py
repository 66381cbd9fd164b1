"""The enclave runtime: the code that runs INSIDE the enclave process (``-m confide.engines.tee.enclave``).

:class:`~confide.engines.tee.host.EnclaveHost` starts it (without network where the OS allows); it
talks only to that host, over stdin/stdout, in the messages of ``wire.py``. It first moves the
protocol to private descriptors and points fds 0-2 at /dev/null, so nothing a library prints reaches
the host, and every error it reports is a fixed code: DuckDB and Arrow messages can quote data, so
they never leave. It makes a fresh X25519 channel key and Ed25519 result key, which never leave it.
Host -> enclave, in this order (``release`` may also follow ``hello`` directly, in a later session)::

    hello    task_id, task_code, block_hash, runtime_digest,     -> report {channel_pub, result_pub,
             locked_deps, mrsigner, isv_prod_id, isv_svn,           report_data, mrenclave,
             sealing_root                                           interfaces}
    quoted   body: the quote the host made of that report       -> ready {quote_digest}
    input    alias, dataset_id, sender_key_id                   (no reply; then frame*, end)
    frame    body: one trusted-channel frame, relayed as is     (no reply)
    end      the input is complete                              -> accepted {alias, dataset_id, input_digest}
    run      min_group_size; run the task over the inputs       -> result {statement, signature,
                                                                   summary}, body: sealed output
    release  requester_pub, output_digest, approved;            -> released, body: release box
             body: the sealed output

Anything else (a frame before ``quoted``, a quote that does not describe this enclave, a refused
frame, a failed task, a release not approved, a malformed message) -> ``error {code}``, exit status 2.

The enclave computes MRENCLAVE itself, from the runtime digest and locked dependencies the host
states (the CPU's part) and the task code it will run, and refuses a quote naming anything else.
Task code equal to a registered function's source (``functions.py``) runs that function; any other
is SQL, run by an in-memory DuckDB with each input registered under its alias and no file, network
or extension access and no spill to disk. ``approved`` is the host's word: the host node sets it
only when its own ledger shows every owner's approval (``confide.node.tee.host``); the enclave cannot
check the ledger itself (a simulation limit, like the ones below).

What this simulation does NOT protect against: the host can read and change this process's memory
(decrypted inputs, keys, results); it holds the sealing root (sent in ``hello``; in SGX it comes
from the CPU) and the attestation key, so it can unseal every output and quote anything; it states
the runtime digest, MRSIGNER, SVN and the approval. ``python -m`` also runs ``confide/__init__.py``,
which loads ledger and SDK modules that are not measured. Real backends (Gramine-SGX, TDX, SEV-SNP)
put these roles into hardware; the protocol stays.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import json
import math
import os
import re
import socket
import sys
from typing import Any, cast

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from .attestation import TEE_TYPE, mrenclave, report_data
from .channel import ChannelError, ChannelReceiver, TransferContext
from .functions import TaskFunction, lookup
from .quote import parse_quote
from .sealing import SealError, SealingRoot, seal, unseal
from .wire import (
    InputDigest,
    MessageReader,
    Reader,
    Stream,
    WireError,
    Writer,
    arrow_ipc,
    box_for_requester,
    read_message,
    result_message,
    sealed_aad,
    widen_pipe,
    write_message,
)

__all__ = ["EXIT_ERROR", "Enclave", "EnclaveRefused", "main", "serve"]

EXIT_ERROR = 2
_ALIAS = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_HEX32 = re.compile(r"[0-9a-f]{64}")
# No files, network or extension installs (nowhere to leak to); SQL cannot reach Python objects by
# name; no temp directory, since spilling would write plaintext to the host's disk.
_DUCKDB: dict[str, Any] = {"enable_external_access": False, "python_enable_replacements": False}
_DUCKDB |= {"autoinstall_known_extensions": False, "autoload_known_extensions": False, "temp_directory": ""}
_STATES = {"hello": {"new"}, "quoted": {"hello"}, "input": {"ready"}, "frame": {"receiving"}}
_STATES |= {"end": {"receiving"}, "run": {"ready"}, "release": {"hello", "ready", "done"}}
_WITH_BODY = {"quoted", "frame", "release"}


class EnclaveRefused(Exception):
    """The enclave stops. ``code`` is a fixed word and all it tells the host: never data."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def _field(h: dict[str, Any], key: str, kind: type) -> Any:
    """A typed header field; ``kind=bytes`` reads 64 lower-case hex digits as 32 bytes."""
    value = h.get(key)
    if kind is bytes and isinstance(value, str) and _HEX32.fullmatch(value):
        return bytes.fromhex(value)
    if type(value) is not kind or kind is bytes:
        raise EnclaveRefused("protocol")
    return value


def _interfaces() -> list[str]:
    with contextlib.suppress(OSError):
        return sorted(name for _, name in socket.if_nameindex())
    return []


def _sql(code: str, tables: dict[str, pa.Table]) -> pa.Table:
    con = duckdb.connect(":memory:", config=_DUCKDB)
    try:
        for alias, table in tables.items():
            con.register(alias, table)
        con.execute("SET enable_progress_bar = false")
        # the join filter DuckDB pushes into an Arrow scan makes pyarrow compare and copy every batch
        con.execute("SET disabled_optimizers = 'join_filter_pushdown'")
        con.execute("SET lock_configuration = true")
        return con.execute(code).fetch_arrow_table()
    finally:
        con.close()


def _number(value: Any) -> int | str | None:
    """A summary number as signed data carries it: integers as is, others as 6-digit decimal text."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return format(f, ".6g") if math.isfinite(f) else None


def _no_floats(obj: Any) -> Any:
    """Task metrics with every float as decimal text (signed data has no floats)."""
    if isinstance(obj, dict):
        return {str(k): _no_floats(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_no_floats(v) for v in obj]
    return _number(obj) if isinstance(obj, float) else obj


def _preview(table: pa.Table, min_group: int) -> dict[str, Any]:
    """What the owners see before they approve a release: shape, per-column summaries, group check.

    Aggregates only (count, nulls, and for numeric columns min / max / mean), the same the requester
    gets anyway. With ``min_group`` > 0 the output must carry an integer ``group_size`` column (how
    many input rows each output row aggregates) whose smallest value is at least ``min_group``; else
    the enclave refuses to produce the output (``below_min_group``). The count is the task's own: the
    owners read the code on the ledger before they approve.
    """
    columns = []
    for field in table.schema:
        col = table.column(field.name)
        entry: dict[str, Any] = {"name": field.name, "type": str(field.type), "nulls": col.null_count}
        if (
            pa.types.is_integer(field.type)
            or pa.types.is_floating(field.type)
            or pa.types.is_decimal(field.type)
        ):
            stats = pc.min_max(col)
            entry |= {"min": _number(stats["min"].as_py()), "max": _number(stats["max"].as_py())}
            entry["mean"] = _number(pc.mean(col).as_py())
        columns.append(entry)
    preview: dict[str, Any] = {"rows": table.num_rows, "columns": columns}
    meta = (table.schema.metadata or {}).get(b"confide.metrics")
    if meta is not None:
        try:
            preview["metrics"] = _no_floats(json.loads(meta))
        except ValueError:
            raise EnclaveRefused("task_failed") from None
    if min_group:
        if "group_size" not in table.column_names or not pa.types.is_integer(
            table.schema.field("group_size").type
        ):
            raise EnclaveRefused("below_min_group")
        smallest = pc.min(table.column("group_size")).as_py() if table.num_rows else None
        if smallest is not None and smallest < min_group:
            raise EnclaveRefused("below_min_group")
        preview["min_group"] = {"required": min_group, "smallest": smallest}
    return preview


class Enclave:
    """One task's state machine: :meth:`handle` takes a message, returns the reply or ``None``."""

    def __init__(self) -> None:
        self._channel_key, self._result_key = X25519PrivateKey.generate(), Ed25519PrivateKey.generate()
        self.state, self._quote_digest = "new", b""
        self._tables: dict[str, pa.Table] = {}
        self._digests: dict[str, str] = {}
        self._rx: tuple[str, str, ChannelReceiver, InputDigest] | None = None

    def handle(self, header: dict[str, Any], body: bytes) -> tuple[dict[str, Any], bytes] | None:
        kind = header["type"]
        if self.state not in _STATES.get(kind, ()) or (kind in _WITH_BODY) != bool(body):
            raise EnclaveRefused("protocol")
        reply: tuple[dict[str, Any], bytes] | None = getattr(self, f"_on_{kind}")(header, body)
        return reply

    def _identity(self) -> dict[str, Any]:
        return {"mrenclave": self._mrenclave, "mrsigner": self._mrsigner, "isv_svn": self._svn}

    def _on_hello(self, h: dict[str, Any], _: bytes) -> tuple[dict[str, Any], bytes]:
        self._task_id, self._code = _field(h, "task_id", str), _field(h, "task_code", str)
        self._mrsigner, self._root = (
            _field(h, "mrsigner", bytes),
            SealingRoot(_field(h, "sealing_root", bytes)),
        )
        self._prod, self._svn = _field(h, "isv_prod_id", int), _field(h, "isv_svn", int)
        if not (self._task_id and 0 <= self._prod <= 0xFFFF and 0 <= self._svn <= 0xFFFF):
            raise EnclaveRefused("protocol")
        self._mrenclave = mrenclave(
            _field(h, "runtime_digest", bytes), _field(h, "locked_deps", str), self._code
        )
        channel_pub = self._channel_key.public_key().public_bytes_raw()
        result_pub = self._result_key.public_key().public_bytes_raw()
        try:
            self._report = report_data(channel_pub, result_pub, self._task_id, _field(h, "block_hash", str))
        except ValueError:
            raise EnclaveRefused("protocol") from None
        self._task_fn: TaskFunction | None = lookup(self._code)
        self.state = "hello"
        keys = {"channel_pub": channel_pub.hex(), "result_pub": result_pub.hex()}
        report = {"mrenclave": self._mrenclave.hex(), "report_data": self._report.hex()}
        return {"type": "report", "interfaces": _interfaces()} | keys | report, b""

    def _on_quoted(self, _: dict[str, Any], quote: bytes) -> tuple[dict[str, Any], bytes]:
        try:
            b = parse_quote(quote).body
        except ValueError:
            raise EnclaveRefused("quote") from None
        mine = (self._mrenclave, self._mrsigner, self._prod, self._svn, self._report)
        if (b.mrenclave, b.mrsigner, b.isv_prod_id, b.isv_svn, b.report_data) != mine:
            raise EnclaveRefused("quote")
        self._quote_digest, self.state = hashlib.sha256(quote).digest(), "ready"
        return {"type": "ready", "quote_digest": self._quote_digest.hex()}, b""

    def _on_input(self, h: dict[str, Any], _: bytes) -> None:
        alias, dataset_id = _field(h, "alias", str), _field(h, "dataset_id", str)
        if not _ALIAS.fullmatch(alias) or alias in self._tables or dataset_id in self._digests:
            raise EnclaveRefused("protocol")
        ctx = TransferContext(self._quote_digest, self._task_id, dataset_id, _field(h, "sender_key_id", str))
        self._rx = (alias, dataset_id, ChannelReceiver(self._channel_key, ctx), InputDigest())
        self.state = "receiving"

    def _on_frame(self, _: dict[str, Any], frame: bytes | memoryview) -> None:
        assert self._rx is not None
        try:
            self._rx[2].feed(frame)  # checks the frame size before it is hashed below
        except ChannelError:
            raise EnclaveRefused("channel") from None
        self._rx[3].update(frame)

    def _on_end(self, _: dict[str, Any], __: bytes) -> tuple[dict[str, Any], bytes]:
        assert self._rx is not None
        (alias, dataset_id, receiver, digest), self._rx = self._rx, None
        try:
            self._tables[alias] = receiver.finish()
        except ChannelError:
            raise EnclaveRefused("channel") from None
        self._digests[dataset_id], self.state = digest.hexdigest(), "ready"
        reply = {"type": "accepted", "alias": alias, "dataset_id": dataset_id}
        return reply | {"input_digest": digest.hexdigest()}, b""

    def _on_run(self, h: dict[str, Any], __: bytes) -> tuple[dict[str, Any], bytes]:
        min_group = h.get("min_group_size", 0)
        if type(min_group) is not int or not 0 <= min_group <= 1_000_000_000:
            raise EnclaveRefused("protocol")
        try:
            table = self._task_fn(self._tables) if self._task_fn else _sql(self._code, self._tables)
            preview = _preview(table, min_group)
            data = arrow_ipc(table)
        except EnclaveRefused:
            raise
        except Exception:  # a task's error text can quote data: only the code leaves
            raise EnclaveRefused("task_failed") from None
        finally:
            self._tables.clear()
        digest = hashlib.sha256(data).digest()
        sealed = seal(
            self._root, "mrenclave", **self._identity(), data=data, aad=sealed_aad(self._task_id, digest)
        )
        statement: dict[str, Any] = {
            "input_digests": self._digests,
            "output_digest": digest.hex(),
            "tee_type": TEE_TYPE,
        }
        statement |= {"quote_digest": self._quote_digest.hex(), "task_id": self._task_id}
        statement |= {"min_group_size": min_group, "preview": preview}
        signature = self._result_key.sign(result_message(statement)).hex()
        summary = {"columns": table.column_names, "rows": table.num_rows}
        self.state = "done"
        return {"type": "result", "statement": statement, "signature": signature, "summary": summary}, sealed

    def _on_release(self, h: dict[str, Any], sealed: bytes) -> tuple[dict[str, Any], bytes]:
        if _field(h, "approved", bool) is not True:
            raise EnclaveRefused("release_not_approved")
        requester, digest = _field(h, "requester_pub", bytes), _field(h, "output_digest", bytes)
        try:
            aad = sealed_aad(self._task_id, digest)
            data = unseal(self._root, "mrenclave", **self._identity(), blob=sealed, aad=aad)
        except SealError:
            raise EnclaveRefused("seal") from None
        if not hmac.compare_digest(hashlib.sha256(data).digest(), digest):
            raise EnclaveRefused("seal")
        try:
            box = box_for_requester(requester, data, task_id=self._task_id, output_digest=digest)
        except ValueError:  # a low-order requester key
            raise EnclaveRefused("protocol") from None
        return {"type": "released"}, box


def serve(read: Reader | Stream, out: Writer) -> int:
    """Answer messages until the host closes the pipe (0) or something is refused (error, 2).

    ``read``: the input stream, whose frame bodies then reuse one buffer, or just its ``read``."""
    enclave = Enclave()
    receive = functools.partial(read_message, read) if callable(read) else MessageReader(read, {"frame"})
    try:
        while (message := receive()) is not None:
            # only frame bodies are views of the reused buffer, and _on_frame is done with them on return
            reply = enclave.handle(message[0], cast(bytes, message[1]))
            if reply is not None:
                write_message(out, *reply)
        return EXIT_ERROR if enclave.state == "receiving" else 0
    except EnclaveRefused as exc:
        code = exc.code
    except WireError:
        code = "protocol"
    except Exception:  # the trust boundary: whatever broke, the host learns one word, never a message
        code = "internal"
    with contextlib.suppress(OSError):
        write_message(out, {"type": "error", "code": code})
    return EXIT_ERROR


def main() -> int:
    inp, out = os.fdopen(os.dup(0), "rb"), os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # stray prints (ours or a library's) go nowhere, never to the host
        os.dup2(null, fd)
    os.close(null)
    for fd in (inp.fileno(), out.fileno()):
        widen_pipe(fd)
    return serve(inp, out)


if __name__ == "__main__":
    sys.exit(main())
