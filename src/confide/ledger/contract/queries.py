"""Read-only views over contract state (the ``query(path)`` of DESIGN §3).

Paths: ``consortium``, ``orgs``, ``org/<id>``, ``members/<org>``, ``catalog``,
``dataset/<org>/<unit>/<name>``, ``applications[?dataset=&applicant_org=&status=]``,
``application/<id>``, ``tasks[?requester=&requester_org=&engine=&status=]`` (without their code),
``task/<id>``, ``run/<id>``, ``release/<run>``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from .ctx import effective_grant_status
from .state import StateView

__all__ = ["QueryError", "run_query"]


class QueryError(LookupError):
    """Unknown path or missing object."""


def _one(state: StateView, key: str) -> dict[str, Any]:
    obj = state.get(key)
    if obj is None:
        raise QueryError(f"{key} not found")
    return obj


def _app_view(app: dict[str, Any], now: int) -> dict[str, Any]:
    return {
        **app,
        "status": effective_grant_status(app, now),
        "uses_left": app["max_uses"] - app["uses"],
    }


def _catalog(state: StateView) -> list[dict[str, Any]]:
    tree = []
    for _, org in state.scan("org/"):
        units = []
        for _, unit in state.scan(f"unit/{org['id']}/"):
            datasets = [
                {
                    "id": d["id"],
                    "title": d["title"],
                    "kind": d["kind"],
                    "version": d["versions"][-1]["version"],
                    "rows": d["versions"][-1]["row_count"],
                    "visibility": d["visibility"]["mode"],
                }
                for _, d in state.scan(f"dataset/{org['id']}/{unit['id']}/")
            ]
            units.append({"id": unit["id"], "name": unit["name"], "datasets": datasets})
        tree.append({"id": org["id"], "name": org["name"], "units": units})
    return tree


def run_query(state: StateView, path: str, now: int) -> Any:
    path, _, qs = path.partition("?")
    head, _, rest = path.partition("/")
    if head == "consortium" and not rest:
        return _one(state, "consortium")
    if head == "orgs" and not rest:
        return [o for _, o in state.scan("org/")]
    if head == "members" and rest:
        return [mm for _, mm in state.scan("member/") if mm["org"] == rest]
    if head == "catalog" and not rest:
        return _catalog(state)
    if head == "applications" and not rest:
        filters = dict(parse_qsl(qs))
        out = []
        for _, app in state.scan("app/"):
            view = _app_view(app, now)
            if all(str(view.get(k)) == v for k, v in filters.items()):
                out.append(view)
        return out
    if head == "application" and rest:
        return _app_view(_one(state, f"app/{rest}"), now)
    if head == "tasks" and not rest:  # filters: requester, requester_org, engine, status
        filters = dict(parse_qsl(qs))
        return [
            {k: v for k, v in t.items() if k != "code"}
            for _, t in state.scan("task/")
            if all(str(t.get(k)) == v for k, v in filters.items())
        ]
    if head == "usages" and not rest:
        filters = dict(parse_qsl(qs))
        return [u for _, u in state.scan("usage/") if all(str(u.get(k)) == v for k, v in filters.items())]
    if head in ("org", "dataset", "task", "run", "release", "member", "unit", "usage") and rest:
        return _one(state, f"{head}/{rest}")
    raise QueryError(f"unknown query path {path!r}")
