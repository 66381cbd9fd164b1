"""Crash safety of the embedded store: SIGKILL a writer mid-stream, then reopen the chain.

A writer subprocess opens a file-backed workspace and commits blocks of many txs in a loop, printing each
committed height (flushed) only after ``submit_many`` returned. The test kills it with SIGKILL at several
moments (after it reported a few heights, plus a varying delay, so some kills land inside a block's
admission or its SQLite commit), reopens the store and checks: every reported height is on disk, heights
are contiguous, no block is partial (tx rows == header tx_count, no orphan tx rows), the whole chain
re-verifies from genesis, and a restarted orderer continues from the head. The same workspace is killed
and restarted repeatedly, so every iteration also starts from a store recovered after a crash.
"""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from confide.ledger import Receipt, build_tx
from confide.ledger.embedded import ChainDB, verify_chain
from confide.ledger.local import LocalLedger, OrgSpec, init_workspace

pytestmark = pytest.mark.slow

TXS_PER_BLOCK = 150
# (trigger, delay in s): kill that long after the writer reported its 2nd committed block, or after it
# announced it is writing the next block (inside ChainDB.append_block, i.e. during the SQLite commit).
KILLS = (
    ("committed", 0.0),
    ("committed", 0.013),
    ("committed", 0.029),
    ("committed", 0.047),
    ("writing", 0.0),
    ("writing", 0.002),
    ("writing", 0.005),
)

WRITER = r"""
import sys
from pathlib import Path

from confide.ledger import Receipt, build_tx
from confide.ledger.embedded.store import ChainDB
from confide.ledger.local import LocalLedger

_append_block = ChainDB.append_block


def announced_append_block(self, block, header, *args, **kwargs):
    print("writing", header.height, flush=True)
    _append_block(self, block, header, *args, **kwargs)


ChainDB.append_block = announced_append_block
workspace, run, per_block = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
led = LocalLedger(workspace)
admin = led.key("bank-admin")
print("ready", led.backend.head().height, flush=True)
n = 0
while True:
    txs = []
    for _ in range(per_block):
        n += 1
        payload = {"unit": f"r{run}-{n}", "name": f"Unit {run}-{n}", "description": "d" * 1500}
        txs.append(build_tx(admin, led.genesis.chain_id, "unit.create", payload))
    receipts = led.backend.submit_many(txs)
    assert all(isinstance(r, Receipt) and r.code == 0 for r in receipts), receipts
    assert len({r.height for r in receipts}) == 1
    print(receipts[0].height, flush=True)
"""


def _run_and_kill(workspace: Path, run: int, trigger: str, delay: float) -> tuple[int, list[int]]:
    """Start the writer, wait for ``trigger`` plus ``delay``, SIGKILL it.

    Returns the head the writer started from and the heights it reported committed. (With delay 0 on the
    "writing" trigger the kill interrupts the SQLite transaction: that block is rolled back on reopen.)
    """
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(workspace), str(run), str(TXS_PER_BLOCK)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    reported: list[int] = []
    in_flight: int | None = None

    def next_line() -> list[str]:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else "writer exited"
        return line.split()

    try:
        first = next_line()
        assert first[0] == "ready"
        while len(reported) < 2 or (trigger == "writing" and in_flight is None):
            words = next_line()
            if words[0] == "writing":
                in_flight = int(words[1]) if len(reported) >= 2 else None
            else:
                reported.append(int(words[0]))
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    reported += [int(words[0]) for words in map(str.split, out.splitlines()) if words[0] != "writing"]
    return int(first[1]), reported


def _check_store(workspace: Path, reported: list[int]) -> int:
    """Assert the reopened store is whole; return its head height."""
    led = LocalLedger(workspace)
    genesis = led.genesis
    led.close()
    db = ChainDB(workspace / "chain.sqlite")
    try:
        heights = db.block_heights()
        assert heights == list(range(len(heights))), "heights are not contiguous"
        assert set(reported) <= set(heights), f"reported {reported} but on disk only up to {heights[-1]}"
        for h in heights:
            block = db.get_block(h)
            assert block is not None
            assert len(block.txs) == block.header.tx_count == len(db.txs_in_block(h)), f"partial block {h}"
        with closing(sqlite3.connect(workspace / "chain.sqlite")) as raw:
            orphans = raw.execute("SELECT COUNT(*) FROM txs WHERE height NOT IN (SELECT height FROM blocks)")
            assert orphans.fetchone()[0] == 0
        report = verify_chain(db, genesis)
        assert report.ok, f"block {report.first_bad_block}: {report.problem}"
        assert report.blocks == len(heights)
        return heights[-1]
    finally:
        db.close()


def test_sigkill_during_writes_loses_nothing_committed_and_leaves_no_partial_block(tmp_path: Path) -> None:
    # Prepare
    workspace = init_workspace(tmp_path / "ws", [OrgSpec("bank", "Bank"), OrgSpec("tax", "Tax")])
    rng = random.Random(20260101)
    head = 0
    for run, (trigger, delay) in enumerate(KILLS):
        # Execute: a writer resumes from the recovered head and is killed while writing
        start, reported = _run_and_kill(workspace, run, trigger, delay + rng.uniform(0, 0.003))

        # Assert: resumed where the last one stopped; everything reported survived; no partial block
        assert start == head
        assert reported == list(range(head + 1, head + 1 + len(reported)))
        head = _check_store(workspace, reported)
        assert head >= reported[-1]

        # ... and a restarted orderer continues from the head
        led = LocalLedger(workspace)
        try:
            admin = led.key("tax-admin")
            receipt = led.backend.submit(
                build_tx(admin, led.genesis.chain_id, "unit.create", {"unit": f"after{run}", "name": "After"})
            )
        finally:
            led.close()
        assert isinstance(receipt, Receipt)
        assert (receipt.height, receipt.code) == (head + 1, 0)
        head = _check_store(workspace, [receipt.height])
