"""One contract suite for every PSI engine behind the interface: the built-in ECDH-PSI and SecretFlow
SPU's RR22, KKRT and ECDH (out of process, in ``.spu-venv``, which ``make test`` creates).

Known intersections (empty, full, one-element, unequal, an empty set), output to both, duplicates,
Unicode IDs (NFC), IDs SPU's CSV cannot carry as they are, progress, and a mismatched peer.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator

import pytest
from _psi_sets import nfc_sorted, psi, random_sets

from confide.engines.psi.ecdh import EcdhPsi
from confide.engines.psi.interface import PsiConfig, PsiEngine, PsiProtocolError
from confide.engines.psi.local import run_pair
from confide.engines.psi.spu import SpuPsi, SpuWorkers

ENGINES = ["ecdh", "spu-rr22", "spu-kkrt", "spu-ecdh", "spu-rr22-spu-dedup"]
"""``spu-rr22-spu-dedup``: RR22 on the large-set path (IDs streamed as they come; SPU de-duplicates)."""


@pytest.fixture(scope="module")
def spu_workers() -> Iterator[SpuWorkers]:
    workers = SpuWorkers(spares=2)
    try:
        yield workers
    finally:
        workers.close()


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest, ecdh: EcdhPsi, spu_workers: SpuWorkers) -> PsiEngine:
    name: str = request.param
    if name == "ecdh":
        return ecdh
    if name == "spu-rr22-spu-dedup":
        return SpuPsi("spu-rr22", spu_workers, dedup_max=0)
    return SpuPsi(name, spu_workers)


@pytest.mark.parametrize(
    ("na", "nb", "common"),
    [(300, 300, 0), (200, 200, 200), (1, 1, 1), (1, 1, 0), (1, 250, 1), (400, 37, 20), (0, 50, 0)],
    ids=["empty", "full", "one-one", "one-disjoint", "one-vs-many", "unequal", "empty-set"],
)
def test_known_intersections(engine: PsiEngine, na: int, nb: int, common: int) -> None:
    a, b, shared = random_sets(random.Random(na * 1000 + nb + common), na, nb, common)
    ra, rb = psi(engine, a, b)
    assert ra.intersection == nfc_sorted(shared)
    assert rb.intersection is None and rb.size is None
    assert (ra.own_count, ra.peer_count, rb.own_count, rb.peer_count) == (na, nb, nb, na)


def test_output_to_both(engine: PsiEngine) -> None:
    a, b, shared = random_sets(random.Random(7), 150, 90, 40)
    ra, rb = psi(engine, a, b, output="both", batch=32)
    assert ra.intersection == rb.intersection == nfc_sorted(shared)


def test_duplicates_are_removed_first(engine: PsiEngine) -> None:
    a = ["x", "y", "x", "z", "z", "z"]
    b = ["z", "z", "w", "x", "x"]
    ra, rb = psi(engine, a, b, output="both")
    assert ra.intersection == rb.intersection == ["x", "z"]
    assert (ra.own_count, ra.peer_count) == (3, 3)


def test_unicode_ids_nfc(engine: PsiEngine) -> None:
    precomposed, combining = "José Müller", "Jose\u0301 Mu\u0308ller"
    assert precomposed != combining
    a = ["张伟", "王芳", "😀🎉", precomposed, "Å", "ﬁ", "李娜"]
    b = ["李娜", combining, "😀🎉", "A\u030a", "fi", "刘洋", "张伟 "]
    ra, rb = psi(engine, a, b, output="both")
    want = nfc_sorted({"李娜", precomposed, "😀🎉", "Å"})  # NFC, not NFKC: "ﬁ" != "fi"; spaces count
    assert ra.intersection == rb.intersection == want


def test_ids_a_csv_cannot_carry_as_they_are(engine: PsiEngine) -> None:
    odd = ["", "a\nb", "c\r\nd", "tab\there", "~tilde", "~7e", 'q"q', "a,b", "NULL", "NaN", " pad "]
    a = [*odd, "only-a"]
    b = [*reversed(odd), "only-b"]
    ra, rb = psi(engine, a, b, output="both")
    assert ra.intersection == rb.intersection == nfc_sorted(set(odd))


def test_progress_reaches_the_end(engine: PsiEngine) -> None:
    seen: list[tuple[int, int]] = []
    lock = threading.Lock()

    def progress(done: int, total: int) -> None:
        with lock:
            seen.append((done, total))

    cfgs = (PsiConfig("p", "receiver", batch_size=10), PsiConfig("p", "sender", batch_size=10))
    run_pair(
        (engine, engine), (["a"] * 3 + list("bcdefghijklmnopqrstuvwxyz"), list("abc")), cfgs, (progress, None)
    )
    assert seen and seen[-1][0] == seen[-1][1] > 0


def test_a_session_mismatch_stops_both(engine: PsiEngine) -> None:
    cfgs = (PsiConfig("t-1", "receiver"), PsiConfig("t-2", "sender"))
    with pytest.raises(PsiProtocolError):
        run_pair((engine, engine), (["a"], ["a"]), cfgs)
