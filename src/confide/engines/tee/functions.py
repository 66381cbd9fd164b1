"""Python functions an enclave may run instead of SQL (part of the enclave runtime, so measured).

A registered function takes the decrypted inputs, ``{alias: pyarrow.Table}``, and returns one
``pyarrow.Table``. A task names one by its *source*: the task code is ``inspect.getsource`` of the
function, byte for byte, so the function's text goes into MRENCLAVE twice, once with this module's
bytes in the runtime digest and once as the task code. The enclave runs a function only when the
task code equals a registered function's source exactly; any other task code is SQL. No SQL text is
the source of a Python ``def``, so the measured code alone decides what runs.

Add a function here, add it to :data:`FUNCTIONS`, and every measurement of this runtime changes.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping

import pyarrow as pa

__all__ = ["FUNCTIONS", "TaskFunction", "lookup", "task_code"]

TaskFunction = Callable[[Mapping[str, pa.Table]], pa.Table]


def row_count(tables: Mapping[str, pa.Table]) -> pa.Table:
    """One row per input, by alias: how many rows the enclave received."""
    aliases = sorted(tables)
    return pa.table({"alias": aliases, "rows": pa.array([tables[a].num_rows for a in aliases], pa.int64())})


FUNCTIONS: dict[str, TaskFunction] = {"row_count": row_count}


def task_code(name: str) -> str:
    """The task code (measured source) of the registered function ``name``."""
    if name not in FUNCTIONS:
        raise KeyError(f"unknown enclave function {name!r}; registered: {', '.join(sorted(FUNCTIONS))}")
    return inspect.getsource(FUNCTIONS[name])


def lookup(code: str) -> TaskFunction | None:
    """The registered function whose source is exactly ``code``, or ``None`` (then ``code`` is SQL)."""
    for fn in FUNCTIONS.values():
        if inspect.getsource(fn) == code:
            return fn
    return None
