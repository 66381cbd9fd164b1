"""Where a bound source may read from: files (and SQLite files) only inside the node's data folder.

The binding stores the spec as the owner gave it (paths relative to the data folder); every reader
resolves it with :func:`confine` first, so a spec can never point at the node's own database or keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["OutsideDataDir", "confine"]


class OutsideDataDir(Exception):
    """A source path outside the node's data folder."""


def _inside(root: Path, rel: str) -> Path:
    path = (root / rel).resolve()
    if not path.is_relative_to(root):
        raise OutsideDataDir("file sources must lie inside the node's data folder")
    return path


def confine(data_dir: Path, spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` with its path resolved inside ``data_dir``, or :class:`OutsideDataDir`."""
    root = data_dir.resolve()
    if "path" in spec:
        return {**spec, "path": str(_inside(root, str(spec["path"])))}
    url = str(spec.get("url", ""))
    if url.startswith("sqlite"):
        _, sep, rel = url.partition(":///")
        if not sep or not rel:
            raise OutsideDataDir("SQLite sources must name a file in the data folder")
        return {**spec, "url": f"sqlite:///{_inside(root, rel)}"}
    return spec
