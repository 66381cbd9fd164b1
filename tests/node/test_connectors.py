"""Data connectors: one contract suite over every table source, digests against independent
references and known answers, each error case, the canary, synthetic previews and the bench."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import itertools
import json
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from confide.crypto.merkle import merkle_root
from confide.interfaces.cli import app
from confide.ledger.contract.models import DatasetRegister
from confide.node.connectors import (
    ConnectorError,
    InvalidSpec,
    MalformedCSV,
    MalformedJSON,
    MalformedParquet,
    SchemaError,
    SourceNotFound,
    SourceUnreachable,
    UnknownConnector,
    UnsupportedOperation,
    connector_names,
    file_digest,
    open_connector,
    synthetic_preview,
)
from confide.node.connectors.bench import measure_step, write_bench_csv
from confide.node.connectors.digest import MerkleChunker
from confide.node.connectors.schema import type_name

VECTORS = json.loads((Path(__file__).parent / "vectors" / "connector_digests.json").read_text())
CANARY = "CANARY-7f3a9c-do-not-leak"
MiB = 1 << 20


# ---------------------------------------------------------------- independent references


def _h(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


def rfc6962_root(leaves: list[bytes]) -> str:
    """MTH of RFC 6962 §2.1, written from the RFC (split at the largest power of two < n)."""

    def mth(d: list[bytes]) -> bytes:
        if not d:
            return _h(b"")
        if len(d) == 1:
            return _h(b"\x00" + d[0])
        k = 1 << ((len(d) - 1).bit_length() - 1)
        return _h(b"\x01" + mth(d[:k]) + mth(d[k:]))

    return mth(leaves).hex()


def reference_file_digest(path: Path) -> str:
    data = path.read_bytes()
    return rfc6962_root([data[i : i + MiB] for i in range(0, len(data), MiB)])


# ---------------------------------------------------------------- factories

ROWS = [
    {
        "id": 1,
        "name": "alpha",
        "score": 1.5,
        "ok": True,
        "day": "2024-01-02",
        "geo": {"lat": 30.1, "lon": 120.2},
    },
    {
        "id": 2,
        "name": "beta",
        "score": None,
        "ok": False,
        "day": "2024-02-03",
        "geo": {"lat": 31.0, "lon": 121.0},
    },
    {
        "id": 3,
        "name": None,
        "score": -2.25,
        "ok": True,
        "day": "2024-03-04",
        "geo": {"lat": 29.5, "lon": 119.9},
    },
]
FLAT = ["id", "name", "score", "ok", "day", "geo.lat", "geo.lon"]


def flat_rows(rows: list[dict[str, Any]] = ROWS) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in r.items() if k != "geo"} | {"geo.lat": r["geo"]["lat"], "geo.lon": r["geo"]["lon"]}
        for r in rows
    ]


def write_csv(path: Path, rows: list[dict[str, Any]] = ROWS) -> Path:
    lines = [",".join(FLAT)]
    for r in flat_rows(rows):
        lines.append(
            ",".join(
                "" if r[c] is None else str(r[c]).lower() if isinstance(r[c], bool) else str(r[c])
                for c in FLAT
            )
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def write_parquet(path: Path, rows: list[dict[str, Any]] = ROWS) -> Path:
    table = pa.Table.from_pylist([r | {"day": dt.date.fromisoformat(r["day"])} for r in rows])
    pq.write_table(table, path)
    return path


def write_jsonl(path: Path, rows: list[dict[str, Any]] = ROWS) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_json(path: Path, rows: list[dict[str, Any]] = ROWS) -> Path:
    path.write_text(json.dumps({"data": {"items": rows}}, indent=2))
    return path


def write_sqlite(path: Path, rows: list[dict[str, Any]] = ROWS) -> Path:
    path.unlink(missing_ok=True)
    con = sqlite3.connect(path)
    con.execute(
        "create table t (id integer primary key, name text, score real, ok boolean not null, "
        'day date not null, "geo.lat" real not null, "geo.lon" real not null)'
    )
    con.executemany(
        "insert into t values (?,?,?,?,?,?,?)", [tuple(r[c] for c in FLAT) for r in flat_rows(rows)]
    )
    con.commit()
    con.close()
    return path


class Api:
    """A tiny HTTP service on 127.0.0.1: ``routes[path] = (status, body, delay_s)``."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, bytes, float]] = {}
        routes = self.routes

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body, delay = routes.get(self.path.split("?")[0], (404, b"{}", 0.0))
                time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests): nothing to print, in any later test's output

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def serve(self, path: str, body: Any, status: int = 200, delay: float = 0.0) -> str:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.routes[path] = (status, raw, delay)
        return self.base + path


@pytest.fixture(scope="module")
def api() -> Iterator[Api]:
    service = Api()
    yield service
    service.server.shutdown()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_source(kind: str, tmp: Path, api: Api, rows: list[dict[str, Any]] = ROWS) -> dict[str, Any]:
    """A source spec holding ``rows`` in the given format."""
    if kind == "csv":
        return {"type": "csv", "path": str(write_csv(tmp / "d.csv", rows))}
    if kind == "parquet":
        return {"type": "parquet", "path": str(write_parquet(tmp / "d.parquet", rows))}
    if kind == "jsonl":
        return {"type": "jsonl", "path": str(write_jsonl(tmp / "d.jsonl", rows))}
    if kind == "json":
        return {"type": "json", "path": str(write_json(tmp / "d.json", rows)), "records": "data.items"}
    if kind == "sql":
        return {"type": "sql", "url": f"sqlite:///{write_sqlite(tmp / 'd.db', rows)}", "table": "t"}
    url = api.serve(f"/{tmp.name}/records", {"items": rows})
    return {"type": "api", "url": url, "records": "items"}


TABLE_KINDS = ["csv", "parquet", "jsonl", "json", "sql", "api"]


def profile_of(spec: dict[str, Any]) -> dict[str, Any]:
    return open_connector(spec).describe().to_json()


# ---------------------------------------------------------------- contract suite, every table source


@pytest.mark.parametrize("kind", TABLE_KINDS)
def test_contract_describe_and_batches(kind: str, tmp_path: Path, api: Api) -> None:
    # Prepare
    spec = make_source(kind, tmp_path, api)
    conn = open_connector(spec)
    # Execute
    profile = conn.describe()
    batches = list(conn.batches())
    subset = list(open_connector(spec).batches(["score", "geo.lon", "id"]))  # no describe() first
    # Assert
    assert profile.kind == ("api" if kind == "api" else "table")
    assert [c["name"] for c in profile.schema] == FLAT
    assert profile.row_count == 3 == sum(b.num_rows for b in batches)
    types = {c["name"]: c["type"] for c in profile.schema}
    assert types["id"] == "int64" and types["score"] == "float64" and types["geo.lat"] == "float64"
    assert types["ok"] == "bool" and types["name"] == "string"
    nullable = {c["name"]: c["nullable"] for c in profile.schema}
    assert nullable["name"] and nullable["score"] and not nullable["geo.lon"]
    assert all(b.schema.names == FLAT for b in batches)
    assert [type_name(f.type) for f in batches[0].schema] == [c["type"] for c in profile.schema]
    table = pa.Table.from_batches(subset)
    assert table.column_names == ["score", "geo.lon", "id"]
    assert table.to_pydict() == {
        "score": [1.5, None, -2.25],
        "geo.lon": [120.2, 121.0, 119.9],
        "id": [1, 2, 3],
    }
    DatasetRegister.model_validate({"unit": "u", "name": "d", "title": "D", **profile.registration()})


@pytest.mark.parametrize("kind", TABLE_KINDS)
def test_contract_digest_is_stable_and_binds_content(kind: str, tmp_path: Path, api: Api) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    changed = [dict(r) for r in ROWS]
    changed[1] = changed[1] | {"id": 7}
    first = profile_of(make_source(kind, tmp_path / "a", api))
    again = profile_of(make_source(kind, tmp_path / "a", api))
    other = profile_of(make_source(kind, tmp_path / "b", api, changed))
    assert first["content_digest"] == again["content_digest"]
    assert len(first["content_digest"]) == 64
    assert other["content_digest"] != first["content_digest"]


@pytest.mark.parametrize("kind", TABLE_KINDS)
def test_contract_unknown_column_is_refused(kind: str, tmp_path: Path, api: Api) -> None:
    conn = open_connector(make_source(kind, tmp_path, api))
    with pytest.raises(InvalidSpec, match="unknown column"):
        list(conn.batches(["nope"]))


# ---------------------------------------------------------------- registry


def test_registry_names_and_unknown_type() -> None:
    assert connector_names() == ["api", "csv", "files", "json", "jsonl", "parquet", "sql"]
    with pytest.raises(UnknownConnector, match="use one of: api, csv, files, json, jsonl, parquet, sql"):
        open_connector({"type": "excel", "path": "x.xlsx"})
    with pytest.raises(InvalidSpec, match="string 'type'"):
        open_connector({"path": "x.csv"})


# ---------------------------------------------------------------- file digests


def test_file_digest_matches_known_answer_and_reference(tmp_path: Path) -> None:
    vec = VECTORS["file"]
    data = (bytes(range(256)) * (vec["length"] // 256 + 1))[: vec["length"]]
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    got = file_digest(path)
    assert got.digest == vec["digest"] == reference_file_digest(path)
    assert (got.size, got.chunks) == (vec["length"], vec["chunks"])
    (tmp_path / "empty").write_bytes(b"")
    assert file_digest(tmp_path / "empty").digest == VECTORS["empty_file"]["digest"]


_BLOB = hashlib.shake_256(b"confide").digest(MiB) * 2 + b"tail" * 1000


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(_BLOB)), max_size=12))
def test_chunker_cuts_at_fixed_boundaries_whatever_the_pieces(cuts: list[int]) -> None:
    chunker = MerkleChunker()
    edges = [0, *sorted(cuts), len(_BLOB)]
    for a, b in itertools.pairwise(edges):
        chunker.update(_BLOB[a:b])
    leaves = chunker.finish()
    assert len(leaves) == 3 and chunker.size == len(_BLOB)
    assert merkle_root(_h, leaves).hex() == rfc6962_root(
        [_BLOB[i : i + MiB] for i in range(0, len(_BLOB), MiB)]
    )


def test_csv_digest_is_merkle_of_raw_bytes_and_one_byte_changes_it(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    path.write_text("k,v\n" + "".join(f"{i},{i * 7 % 1000}\n" for i in range(400_000)))  # ~4.3 MiB, 5 leaves
    profile = profile_of({"type": "csv", "path": str(path)})
    assert profile["content_digest"] == reference_file_digest(path)
    assert profile["row_count"] == 400_000 and profile["details"]["chunks"] == 5
    raw = bytearray(path.read_bytes())
    raw[3 * MiB + 5] = ord("9") if raw[3 * MiB + 5] != ord("9") else ord("8")
    path.write_bytes(bytes(raw))
    assert profile_of({"type": "csv", "path": str(path)})["content_digest"] != profile["content_digest"]


def test_sql_rows_digest_matches_known_answer(tmp_path: Path) -> None:
    vec = VECTORS["rows"]
    con = sqlite3.connect(tmp_path / "v.db")
    con.execute(vec["sqlite"]["ddl"])
    for row in vec["sqlite"]["rows"]:
        blob = None if row[4] is None else base64.b64decode(row[4])
        con.execute("insert into t values (?,?,?,?,?)", (*row[:4], blob))
    con.commit()
    con.close()
    profile = profile_of({"type": "sql", "url": f"sqlite:///{tmp_path / 'v.db'}", "table": "t"})
    reference = rfc6962_root([vec["schema_line"].encode(), vec["stream"].encode()])
    assert profile["content_digest"] == vec["digest"] == reference
    assert profile["details"]["order_by"] == ["id"]


# ---------------------------------------------------------------- CSV specifics


def test_csv_types_nulls_and_widening(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    body = "".join(f"{i},true,2024-01-02,2024-01-02 03:04:05,,x{i}\n" for i in range(60_000))
    path.write_text("n,b,d,ts,empty,s\n" + body + "1.5,maybe,2024-01-03,2024-01-03,,y\n")
    profile = profile_of({"type": "csv", "path": str(path)})
    types = {c["name"]: c["type"] for c in profile["schema"]}
    # n and b change type after the first block: widened, not failed
    assert types == {
        "n": "float64",
        "b": "string",
        "d": "date",
        "ts": "timestamp",
        "empty": "string",
        "s": "string",
    }
    assert [c["nullable"] for c in profile["schema"]] == [False, False, False, False, True, False]
    assert profile["row_count"] == 60_001 and len(profile["details"]["widened"]) == 2


def test_csv_declared_types_are_kept_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text("code,qty\n")
    profile = profile_of(
        {"type": "csv", "path": str(path), "column_types": {"code": "string", "qty": "int64"}}
    )
    assert [c["type"] for c in profile["schema"]] == ["string", "int64"] and profile["row_count"] == 0
    path.write_text("code,qty\n001,x\n")
    with pytest.raises(SchemaError, match="'qty' holds a value that is not int64"):
        profile_of({"type": "csv", "path": str(path), "column_types": {"code": "string", "qty": "int64"}})


# ---------------------------------------------------------------- semi-structured


def test_jsonl_flattens_nested_objects_and_keeps_lists_as_json(tmp_path: Path) -> None:
    path = tmp_path / "n.jsonl"
    path.write_text(
        '{"a": {"b": {"c": 1}}, "tags": ["x", "y"], "n": 1}\n\n{"a": {"b": {"c": 2.5}, "d": "q"}, "n": 2}\n'
    )
    conn = open_connector({"type": "jsonl", "path": str(path)})
    profile = conn.describe()
    assert [(c["name"], c["type"], c["nullable"]) for c in profile.schema] == [
        ("a.b.c", "float64", False),
        ("tags", "json", True),
        ("n", "int64", False),
        ("a.d", "string", True),
    ]
    rows = pa.Table.from_batches(list(conn.batches())).to_pylist()
    assert rows[0] == {"a.b.c": 1.0, "tags": '["x","y"]', "n": 1, "a.d": None}


def test_parquet_flattens_structs_and_reads_nullability_from_statistics(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "p.parquet")
    profile = profile_of({"type": "parquet", "path": str(path)})
    assert profile["content_digest"] == reference_file_digest(path)
    nullable = {c["name"]: c["nullable"] for c in profile["schema"]}
    assert nullable == {
        "id": False,
        "name": True,
        "score": True,
        "ok": False,
        "day": False,
        "geo.lat": False,
        "geo.lon": False,
    }
    pq.write_table(pa.table({"l": [[1], [2, 3]]}), tmp_path / "l.parquet")
    assert profile_of({"type": "parquet", "path": str(tmp_path / "l.parquet")})["schema"][0]["type"] == "json"


# ---------------------------------------------------------------- SQL specifics


def test_sql_query_streams_in_batches_and_digest_ignores_storage_order(tmp_path: Path) -> None:
    rows = [(i, f"n{i}", i * 0.5) for i in range(25_000)]
    for name, order in (("a.db", rows), ("b.db", rows[::-1])):
        con = sqlite3.connect(tmp_path / name)
        con.execute("create table t (id integer primary key, name text not null, v real)")
        con.executemany("insert into t values (?,?,?)", order)
        con.commit()
        con.close()
    a = profile_of({"type": "sql", "url": f"sqlite:///{tmp_path / 'a.db'}", "table": "t"})
    b = profile_of({"type": "sql", "url": f"sqlite:///{tmp_path / 'b.db'}", "table": "t"})
    assert a["content_digest"] == b["content_digest"] and a["row_count"] == 25_000
    assert [c["nullable"] for c in a["schema"]] == [False, False, True]
    q = open_connector(
        {
            "type": "sql",
            "url": f"sqlite:///{tmp_path / 'a.db'}",
            "query": "select id, v * 2 as w from t where id % 2 = 0 order by id",
        }
    )
    assert q.describe().row_count == 12_500
    sizes = [batch.num_rows for batch in q.batches(["w"])]
    assert sizes == [10_000, 2_500]


# ---------------------------------------------------------------- folders


def test_folder_per_file_digests_and_root_match_known_answer(tmp_path: Path) -> None:
    vec = VECTORS["folder"]
    root = tmp_path / "docs"
    for rel, text in vec["files"].items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    conn = open_connector({"type": "files", "path": str(root)})
    profile = conn.describe()
    per_file = {f["path"]: f["digest"] for f in profile.details["files"]}
    assert per_file == vec["file_digests"]
    assert [f["path"] for f in profile.details["files"]] == vec["order"]
    assert profile.content_digest == vec["root"]
    assert profile.kind == "document" and profile.row_count == 3
    entries = list(conn.files())
    assert [e.relpath for e in entries] == vec["order"] and entries[1].open().read() == b"hello\n"
    with pytest.raises(UnsupportedOperation, match="has no rows"):
        list(conn.batches())


def test_folder_kind_symlinks_and_renames(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    root.mkdir()
    (root / "a.png").write_bytes(b"\x89PNG fake")
    (root / "b.txt").write_text("note")
    outside = tmp_path / "secret.txt"
    outside.write_text(CANARY)
    (root / "link.txt").symlink_to(outside)
    profile = profile_of({"type": "files", "path": str(root)})
    assert profile["kind"] == "files" and profile["row_count"] == 2
    assert profile["details"]["skipped_symlinks"] == 1
    (root / "b.txt").rename(root / "c.txt")
    assert profile_of({"type": "files", "path": str(root)})["content_digest"] != profile["content_digest"]


# ---------------------------------------------------------------- HTTP API


OPENAPI = {
    "openapi": "3.0.3",
    "paths": {
        "/v1/{region}/stations": {
            "get": {
                "responses": {
                    "200": {
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Page"}}}
                    }
                }
            }
        }
    },
    "components": {
        "schemas": {
            "Page": {
                "type": "object",
                "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/S"}}},
            },
            "S": {
                "type": "object",
                "required": ["id", "geo"],
                "properties": {
                    "id": {"type": "integer"},
                    "at": {"type": "string", "format": "date-time"},
                    "geo": {"type": "object", "required": ["lat"], "properties": {"lat": {"type": "number"}}},
                    "tags": {"type": "array", "items": {"type": "string"}},
                },
            },
        }
    },
}


def test_api_schema_from_openapi_document(api: Api) -> None:
    url = api.serve("/base/v1/east/stations", {"items": [{"id": 1, "geo": {"lat": 2.5}, "tags": ["a"]}]})
    schema_url = api.serve("/openapi.json", OPENAPI)
    profile = profile_of(
        {"type": "api", "url": url, "records": "items", "schema_url": schema_url, "timeout": 2}
    )
    assert [(c["name"], c["type"], c["nullable"]) for c in profile["schema"]] == [
        ("id", "int64", False),
        ("at", "timestamp", True),
        ("geo.lat", "float64", False),
        ("tags", "json", True),
    ]
    assert profile["details"]["schema_source"] == "openapi" and profile["row_count"] == 1
    canonical = json.dumps(OPENAPI, sort_keys=True, separators=(",", ":")).encode()
    assert profile["details"]["schema_document_sha256"] == hashlib.sha256(canonical).hexdigest()


def test_api_schema_from_json_schema_and_digest_of_the_sample(api: Api) -> None:
    records = [{"code": "91A", "amount": 3}, {"code": "91B", "amount": 4, "extra": "not in the schema"}]
    url = api.serve("/js/records", records)
    doc = {
        "type": "array",
        "items": {
            "type": "object",
            "required": ["code"],
            "properties": {
                "code": {"type": "string"},
                "amount": {"type": ["integer", "null"]},
                "born": {"type": "string", "format": "date"},
            },
        },
    }
    spec = {"type": "api", "url": url, "schema_url": api.serve("/js/schema", doc)}
    profile = profile_of(spec)
    assert [(c["name"], c["type"], c["nullable"]) for c in profile["schema"]] == [
        ("code", "string", False),
        ("amount", "int64", True),
        ("born", "date", True),
    ]
    schema_line = '["confide-rows/1",[["code","string"],["amount","int64"],["born","date"]]]\n'
    stream = '["91A",3,null]\n["91B",4,null]\n'  # keys outside the schema are not digested
    assert profile["content_digest"] == rfc6962_root([schema_line.encode(), stream.encode()])
    assert profile["details"]["schema_source"] == "json-schema" and profile["kind"] == "api"


# ---------------------------------------------------------------- errors: class and message


def _ragged(tmp: Path) -> dict[str, Any]:
    (tmp / "r.csv").write_text(f"a,b,c\n1,2,3\n4,5,6,{CANARY}\n")
    return {"type": "csv", "path": str(tmp / "r.csv")}


def _bad_quote(tmp: Path) -> dict[str, Any]:
    (tmp / "q.csv").write_text('a,b,c\n1,2,3\n1,"2,3\n4,5,6\n')
    return {"type": "csv", "path": str(tmp / "q.csv")}


def _write(tmp: Path, name: str, text: str, **extra: Any) -> dict[str, Any]:
    (tmp / name).write_text(text)
    return {"type": name.rsplit(".", 1)[1], "path": str(tmp / name), **extra}


ERROR_CASES: list[tuple[str, Callable[[Path], dict[str, Any]], type[ConnectorError], str]] = [
    ("csv ragged row", _ragged, MalformedCSV, "r.csv, line 3: expected 3 columns, got 4"),
    ("csv bad quoting", _bad_quote, MalformedCSV, "q.csv, line 3: expected 3 columns, got 2"),
    ("csv empty", lambda t: _write(t, "e.csv", ""), SchemaError, "e.csv is empty"),
    ("csv header only", lambda t: _write(t, "h.csv", "a,b\n"), SchemaError, 'pass "column_types"'),
    (
        "csv duplicate header",
        lambda t: _write(t, "d.csv", "a,a\n1,2\n"),
        SchemaError,
        "duplicate column name 'a'",
    ),
    (
        "csv missing",
        lambda t: {"type": "csv", "path": str(t / "nope.csv")},
        SourceNotFound,
        "nope.csv' not found",
    ),
    (
        "jsonl bad line",
        lambda t: _write(t, "b.jsonl", '{"a": 1}\n{"a": 2}\n{"a": 3,,}\n'),
        MalformedJSON,
        "b.jsonl, line 3: Expecting property name",
    ),
    (
        "jsonl not object",
        lambda t: _write(t, "o.jsonl", '{"a": 1}\n[1, 2]\n'),
        MalformedJSON,
        "o.jsonl, line 2: the line is not a JSON object",
    ),
    (
        "jsonl key collision",
        lambda t: _write(t, "k.jsonl", '{"a.b": 1, "a": {"b": 2}}\n'),
        SchemaError,
        "line 1: column 'a.b' appears both",
    ),
    (
        "json bad syntax",
        lambda t: _write(t, "s.json", '[\n {"a": 1},\n {"a": }\n]'),
        MalformedJSON,
        "s.json, line 3: Expecting value",
    ),
    ("json empty array", lambda t: _write(t, "z.json", "[]"), SchemaError, "z.json holds no records"),
    ("json scalar", lambda t: _write(t, "n.json", "42"), MalformedJSON, "neither an array nor an object"),
    (
        "parquet garbage",
        lambda t: _write(t, "g.parquet", "not parquet at all"),
        MalformedParquet,
        "g.parquet: not a Parquet file",
    ),
    ("files empty folder", lambda t: {"type": "files", "path": str(t)}, SchemaError, "holds no files"),
    (
        "sqlite file missing",
        lambda t: {"type": "sql", "url": f"sqlite:///{t}/no.db", "table": "t"},
        SourceNotFound,
        "no.db' not found",
    ),
    (
        "sql table missing",
        lambda t: {"type": "sql", "url": f"sqlite:///{write_sqlite(t / 'x.db')}", "table": "nope"},
        SourceNotFound,
        "pick one of: t",
    ),
    (
        "sql bad query",
        lambda t: {"type": "sql", "url": f"sqlite:///{write_sqlite(t / 'y.db')}", "query": "selec 1"},
        InvalidSpec,
        'the query failed: near "selec"',
    ),
    (
        "sql both table and query",
        lambda t: {"type": "sql", "url": "sqlite://", "table": "t", "query": "select 1"},
        InvalidSpec,
        "exactly one of 'table' and 'query'",
    ),
    (
        "postgres unreachable",
        lambda t: {
            "type": "sql",
            "table": "t",
            "timeout": 2,
            "url": f"postgresql+psycopg://u:hunter2@127.0.0.1:{closed_port()}/db",
        },
        SourceUnreachable,
        "cannot reach postgresql+psycopg://u:***@127.0.0.1",
    ),
    (
        "api refused",
        lambda t: {"type": "api", "url": f"http://127.0.0.1:{closed_port()}/x", "timeout": 1},
        SourceUnreachable,
        "connection failed",
    ),
]


@pytest.mark.parametrize(("case", "build", "error", "message"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_error_cases(
    case: str,
    build: Callable[[Path], dict[str, Any]],
    error: type[ConnectorError],
    message: str,
    tmp_path: Path,
) -> None:
    spec = build(tmp_path)
    with pytest.raises(ConnectorError) as info:
        open_connector(spec).describe()
    assert type(info.value) is error
    assert message in str(info.value) and "what to do:" in str(info.value)
    assert CANARY not in str(info.value) and "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    ("path", "body", "status", "delay", "error", "message"),
    [
        ("/gone", {}, 404, 0.0, SourceNotFound, "/gone not found"),
        ("/boom", {"detail": CANARY}, 500, 0.0, SourceUnreachable, "HTTP 500"),
        ("/html", b"<html>" + CANARY.encode(), 200, 0.0, MalformedJSON, "the response is not JSON"),
        ("/slow", {"items": []}, 200, 1.5, SourceUnreachable, "no answer within 0.3 s"),
        ("/empty", {"items": []}, 200, 0.0, SchemaError, "holds no records, so no schema"),
    ],
)
def test_api_error_cases(
    api: Api, path: str, body: Any, status: int, delay: float, error: type[ConnectorError], message: str
) -> None:
    url = api.serve(path, body, status, delay)
    with pytest.raises(ConnectorError) as info:
        open_connector(
            {"type": "api", "url": url + "?token=s3cret", "records": "items", "timeout": 0.3}
        ).describe()
    assert type(info.value) is error and message in str(info.value)
    assert CANARY not in str(info.value) and "s3cret" not in str(info.value)


# ---------------------------------------------------------------- canary and synthetic previews


@pytest.mark.parametrize("kind", TABLE_KINDS)
def test_canary_never_leaves_through_describe_or_preview(kind: str, tmp_path: Path, api: Api) -> None:
    rows = [dict(r) for r in ROWS]
    rows[2]["name"] = CANARY
    profile = open_connector(make_source(kind, tmp_path, api, rows)).describe()
    shown = json.dumps(profile.to_json()) + json.dumps(synthetic_preview(profile.schema, n=50, seed=7))
    assert CANARY not in shown and "alpha" not in shown


def test_synthetic_preview_is_deterministic_and_typed() -> None:
    schema = [
        {"name": "code", "type": "string", "nullable": False},
        {"name": "n", "type": "int64", "nullable": False},
        {"name": "x", "type": "float64", "nullable": True},
        {"name": "day", "type": "date", "nullable": False},
        {"name": "ok", "type": "bool", "nullable": False},
        {"name": "odd", "type": "int32", "nullable": True},
    ]
    rows = synthetic_preview(schema, n=20, seed=42)
    assert rows == synthetic_preview(schema, n=20, seed=42) != synthetic_preview(schema, n=20, seed=43)
    assert len(rows) == 20 and rows[3]["code"] == "sample_code_3"
    assert all(isinstance(r["n"], int) and isinstance(r["ok"], bool) for r in rows)
    assert all(dt.date.fromisoformat(r["day"]).year in range(2020, 2026) for r in rows)
    assert any(r["x"] is None for r in rows) and all(
        r["x"] is None or isinstance(r["x"], float) for r in rows
    )
    json.dumps(rows)


# ---------------------------------------------------------------- benchmark


def test_bench_catalog_prints_json_last(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["bench", "catalog", "--rows", "20000", "--repeat", "1", "--workdir", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert any("generated 20,000/20,000 rows" in line for line in lines)
    last = json.loads(lines[-1])
    assert {"rows", "seconds", "peak_rss_mb", "baseline_seconds", "ratio", "file_mb"} <= set(last)
    assert last["rows"] == 20_000 and last["seconds"] > 0 and last["peak_rss_mb"] > 0
    # the ratio comes from the unrounded times; the printed times are rounded to 1 ms
    s, b = last["seconds"], last["baseline_seconds"]
    assert (
        (s - 0.0005) / (b + 0.0005) * 0.999 <= last["ratio"] <= (s + 0.0005) / max(b - 0.0005, 1e-9) * 1.001
    )


@pytest.mark.slow
def test_describe_memory_does_not_grow_with_file_size(tmp_path: Path) -> None:
    # Arrow's reader reaches its steady footprint after a few dozen MB, so start there (500k rows, 30 MB)
    small, big = tmp_path / "small.csv", tmp_path / "big.csv"
    small_mb = write_bench_csv(small, 500_000, progress=lambda s: None) / MiB
    big_mb = write_bench_csv(big, 2_500_000, progress=lambda s: None) / MiB
    peak_small = measure_step("describe", small)["peak_rss_mb"]
    measured = measure_step("describe", big)
    assert measured["result"]["row_count"] == 2_500_000
    # holding the data would cost at least the extra 120 MB of file; allow half of it for noise
    assert measured["peak_rss_mb"] - peak_small < 0.5 * (big_mb - small_mb), (peak_small, measured, big_mb)
