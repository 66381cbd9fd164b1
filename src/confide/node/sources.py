"""Where a bound source may read from: files (and SQLite files) only inside the node's data folder.

The binding stores the spec as the owner gave it (paths relative to the data folder); every reader
resolves it with :func:`confine` first, so a spec can never point at the node's own database or keys.
:func:`read_version` is how every engine reads a dataset version for a run: only the columns asked.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from .connectors import ConnectorError, open_connector
from .refusal import Refused

if TYPE_CHECKING:
    from .context import NodeContext

__all__ = ["OutsideDataDir", "confine", "read_version"]


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


def read_version(ctx: NodeContext, dataset: str, digest: str, columns: list[str]) -> Iterator[pa.RecordBatch]:
    """``columns`` of the version ``digest`` of ``dataset``, through its bound source, as Arrow batches.

    Refused ``NO_SOURCE`` when nothing is bound to that version and ``BAD_SOURCE`` when the source
    cannot be read (also while iterating).
    """
    spec = ctx.local.source_for(dataset, digest)
    if spec is None:
        raise Refused("NO_SOURCE", f"this node has no source bound for {dataset} version {digest[:16]}", 409)
    try:
        batches = open_connector(confine(Path(ctx.config.data_dir), spec)).batches(columns)
    except (ConnectorError, OutsideDataDir) as exc:
        raise Refused("BAD_SOURCE", f"the source of {dataset} cannot be read: {exc}", 409) from None
    return _guarded(batches, dataset)


def _guarded(batches: Iterator[pa.RecordBatch], dataset: str) -> Iterator[pa.RecordBatch]:
    try:
        yield from batches
    except (ConnectorError, OutsideDataDir) as exc:
        raise Refused("BAD_SOURCE", f"the source of {dataset} cannot be read: {exc}", 409) from None
