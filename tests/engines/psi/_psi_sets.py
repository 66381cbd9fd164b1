"""Shared by the PSI tests: random sets with a known intersection, and the expected canonical result."""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Sequence

from confide.engines.psi.interface import PsiConfig, PsiEngine, PsiResult
from confide.engines.psi.local import run_pair


def nfc_sorted(ids: set[str]) -> list[str]:
    return sorted({unicodedata.normalize("NFC", s) for s in ids}, key=lambda s: s.encode())


def random_sets(rng: random.Random, na: int, nb: int, common: int) -> tuple[list[str], list[str], set[str]]:
    pool = [f"{rng.getrandbits(40):012x}" for _ in range(na + nb)]
    pool = list(dict.fromkeys(pool))
    shared = pool[:common]
    a = shared + pool[common:na]
    b = shared + pool[na : na + nb - common]
    rng.shuffle(a)
    rng.shuffle(b)
    return a, b, set(shared)


def psi(
    engine: PsiEngine, a: Sequence[str], b: Sequence[str], output: str = "receiver", batch: int = 64
) -> tuple[PsiResult, PsiResult]:
    cfg_a = PsiConfig("t-1", "receiver", output, batch)  # type: ignore[arg-type]
    cfg_b = PsiConfig("t-1", "sender", output, batch)  # type: ignore[arg-type]
    return run_pair((engine, engine), (a, b), (cfg_a, cfg_b))
