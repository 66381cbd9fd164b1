"""``confide demo credit`` as a user runs it: a subprocess, exit status 0, a JSON last line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_credit_demo_releases_scores_with_provenance_verified_by_every_node(tmp_path: Path) -> None:
    work = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "confide", "demo", "credit", "--workdir", str(work), "--enterprises", "800"],
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    last = json.loads(proc.stdout.strip().splitlines()[-1])
    assert last["released"] is True and last["provenance_verified"] is True
    assert last["tee_type"] == "simulated" and last["scored"] > 0.8 * last["applicants"] > 100
    assert last["auc_holdout"] > 0.7  # the joined features carry real signal
    for org in ("bank", "tax", "power"):
        assert f"{org:>6} node: provenance verified = True" in proc.stdout
