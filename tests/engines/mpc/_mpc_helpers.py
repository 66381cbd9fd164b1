"""Shared helpers for the MPC engine tests: seeded randomness and a 2-party + dealer run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from confide.engines.mpc.beaver import Dealer
from confide.engines.mpc.party import PartyContext
from confide.engines.mpc.transport import run_local

SESSION = bytes(range(16))


def seeded(seed: int) -> Callable[[int], bytes]:
    return np.random.default_rng(seed).bytes


def contexts(
    parties: tuple[int, ...] = (0, 1), dealer: int | None = 9, seed: int = 1
) -> dict[int, PartyContext]:
    return {p: PartyContext(p, parties, SESSION, dealer, random_bytes=seeded(seed + p)) for p in parties}


def run_with_dealer(
    programs: dict[int, Any], parties: tuple[int, ...] = (0, 1), timeout: float = 20.0
) -> dict[int, Any]:
    progs = dict(programs)
    progs[9] = Dealer(9, parties, SESSION, random_bytes=seeded(99)).program()
    return run_local(progs, timeout=timeout)
