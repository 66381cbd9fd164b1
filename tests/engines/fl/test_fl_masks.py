from __future__ import annotations

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from confide.engines.fl.masks import CHUNK, apply_masks, pair_mask_key, prg, self_mask_key


def test_prg_known_answer() -> None:
    # AES-128 with the all-zero key on the all-zero block (FIPS-197 era classic): 66e94bd4ef8a2c3b...
    words = prg(bytes(16), 2)
    assert int(words[0]) == int.from_bytes(bytes.fromhex("66e94bd4ef8a2c3b"), "little")
    assert int(words[1]) == int.from_bytes(bytes.fromhex("884cfa59ca342b2e"), "little")


def test_chunked_expansion_equals_one_ctr_stream() -> None:
    key = bytes(range(16))
    n = 2 * CHUNK + 5
    enc = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor()
    want = np.frombuffer(enc.update(bytes(8 * n)), dtype="<u8")
    assert np.array_equal(prg(key, n), want)


def test_apply_masks_signs_and_base() -> None:
    n = CHUNK + 3
    k1, k2 = bytes([1]) * 16, bytes([2]) * 16
    base = np.arange(n, dtype=np.uint64)
    acc = base.copy()
    apply_masks(acc, [(k1, 1), (k2, -1)])
    assert np.array_equal(acc, base + prg(k1, n) - prg(k2, n))
    fused = np.empty(n, dtype=np.uint64)
    apply_masks(fused, [(k1, 1), (k2, -1)], base=base)
    assert np.array_equal(fused, acc)
    apply_masks(acc, [(k2, 1), (k1, -1)])
    assert np.array_equal(acc, base)
    with pytest.raises(ValueError, match="signs"):
        apply_masks(acc, [(k1, 2)])
    with pytest.raises(ValueError, match="uint64"):
        apply_masks(acc.astype(np.int64), [(k1, 1)])


def test_mask_keys_are_bound_to_session_and_clients() -> None:
    a = bytes(32)
    s1, s2 = bytes(16), bytes([1]) * 16
    assert pair_mask_key(a, s1, 3, 7) == pair_mask_key(a, s1, 7, 3)
    assert pair_mask_key(a, s1, 3, 7) != pair_mask_key(a, s2, 3, 7)
    assert pair_mask_key(a, s1, 3, 7) != pair_mask_key(a, s1, 3, 8)
    assert self_mask_key(a, s1, 3) != self_mask_key(a, s1, 4)
    assert len(self_mask_key(a, s1, 3)) == 16
