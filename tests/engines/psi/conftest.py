"""Fixtures shared by the PSI engine tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from confide.engines.psi.ecdh import EcdhPsi, new_pool


@pytest.fixture(scope="module")
def ecdh() -> Iterator[EcdhPsi]:
    """The built-in ECDH-PSI engine on a 2-worker process pool (one pool per test module)."""
    pool = new_pool(2)
    try:
        yield EcdhPsi(pool, 2)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
