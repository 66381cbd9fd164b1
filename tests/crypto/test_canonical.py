"""Tests of canonical JSON (``confide.crypto.canonical``): RFC 8785 restricted to the signed subset.

Known answers live in ``vectors/canonical.json`` (valid inputs with their exact canonical text, invalid
JSON-representable inputs, and byte strings ``parse_canonical`` must refuse). Values JSON cannot express
(NaN, sets, bytes, non-string keys, lone surrogates, deep nesting) are tabulated here. A Hypothesis
property cross-checks ``canonical_bytes`` against the independent ``rfc8785`` package and checks that
``parse_canonical`` inverts it.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from confide.crypto import errors
from confide.crypto.canonical import MAX_SAFE_INT, canonical_bytes, parse_canonical
from confide.crypto.errors import CanonicalEncodingError

VECTORS: dict[str, Any] = json.loads((Path(__file__).parent / "vectors" / "canonical.json").read_text())


def _nested_lists(depth: int) -> Any:
    """A scalar wrapped in ``depth`` arrays: ``[[...[0]...]]``."""
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


def _nested_dicts(depth: int) -> Any:
    """A scalar wrapped in ``depth`` objects: ``{"k":{"k":...0...}}``."""
    value: Any = 0
    for _ in range(depth):
        value = {"k": value}
    return value


def _cyclic_list() -> list[Any]:
    value: list[Any] = []
    value.append(value)
    return value


def _vector_bytes(vector: dict[str, Any]) -> bytes:
    return bytes.fromhex(vector["hex"]) if "hex" in vector else vector["text"].encode("utf-8")


# --- known answers: valid values ------------------------------------------------------------------


@pytest.mark.parametrize("vector", VECTORS["valid"], ids=[v["name"] for v in VECTORS["valid"]])
def test_canonical_bytes_matches_known_answer(vector: dict[str, Any]) -> None:
    # Prepare
    expected = vector["canonical"].encode("utf-8")

    # Execute
    encoded = canonical_bytes(vector["input"])

    # Assert
    assert encoded == expected


@pytest.mark.parametrize("vector", VECTORS["valid"], ids=[v["name"] for v in VECTORS["valid"]])
def test_known_answers_agree_with_independent_rfc8785_package(vector: dict[str, Any]) -> None:
    # Prepare
    expected = vector["canonical"].encode("utf-8")

    # Execute
    reference = rfc8785.dumps(vector["input"])

    # Assert
    assert reference == expected


@pytest.mark.parametrize("vector", VECTORS["valid"], ids=[v["name"] for v in VECTORS["valid"]])
def test_parse_canonical_accepts_known_answer_and_returns_input(vector: dict[str, Any]) -> None:
    # Prepare
    data = vector["canonical"].encode("utf-8")

    # Execute
    value = parse_canonical(data)

    # Assert
    assert value == vector["input"]


def test_utf16_order_differs_from_code_point_order_for_astral_keys() -> None:
    # Prepare: U+E000 < U+1F600 as code points, but 0xE000 > 0xD83D as first UTF-16 code units.
    value = {"\ue000": "pua", "\U0001f600": "emoji"}

    # Execute
    encoded = canonical_bytes(value)

    # Assert
    assert encoded.index("\U0001f600".encode()) < encoded.index("\ue000".encode())
    assert encoded == '{"\U0001f600":"emoji","\ue000":"pua"}'.encode()


def test_key_insertion_order_does_not_change_encoding() -> None:
    # Prepare
    forward = {"\U0001f600": 1, "b": [{"y": 2, "x": 1}], "\ue000": 3, "a": None}
    backward = dict(reversed(list(forward.items())))

    # Execute
    first, second = canonical_bytes(forward), canonical_bytes(backward)

    # Assert
    assert first == second


def test_tuple_encodes_like_list() -> None:
    # Prepare
    as_tuple, as_list = (1, "a", (True, None)), [1, "a", [True, None]]

    # Execute
    encoded = canonical_bytes(as_tuple)

    # Assert
    assert encoded == canonical_bytes(as_list) == b'[1,"a",[true,null]]'


def test_max_safe_int_constant_is_2_pow_53_minus_1() -> None:
    # Prepare / Execute
    bounds = [canonical_bytes(MAX_SAFE_INT), canonical_bytes(-MAX_SAFE_INT)]

    # Assert
    assert MAX_SAFE_INT == 2**53 - 1
    assert bounds == [b"9007199254740991", b"-9007199254740991"]


def test_nesting_of_exactly_64_levels_is_accepted() -> None:
    # Prepare: the innermost scalar sits under 64 containers.
    lists, dicts = _nested_lists(64), _nested_dicts(64)

    # Execute
    encoded_lists, encoded_dicts = canonical_bytes(lists), canonical_bytes(dicts)

    # Assert
    assert encoded_lists == b"[" * 64 + b"0" + b"]" * 64
    assert encoded_dicts == b'{"k":' * 64 + b"0" + b"}" * 64


# --- known answers: values canonical_bytes must refuse ---------------------------------------------


@pytest.mark.parametrize("vector", VECTORS["invalid"], ids=[v["name"] for v in VECTORS["invalid"]])
def test_canonical_bytes_rejects_invalid_vector(vector: dict[str, Any]) -> None:
    # Prepare
    error_type = getattr(errors, vector["error"])

    # Execute
    with pytest.raises(error_type) as exc_info:
        canonical_bytes(vector["input"])

    # Assert
    assert type(exc_info.value) is error_type
    assert vector["message"] in str(exc_info.value)


NON_JSON_INVALID = [
    pytest.param(math.nan, "floats are not allowed in signed data", id="nan"),
    pytest.param(math.inf, "floats are not allowed in signed data", id="inf"),
    pytest.param(-math.inf, "floats are not allowed in signed data", id="-inf"),
    pytest.param({"a": [math.nan]}, "floats are not allowed in signed data", id="nested nan"),
    pytest.param(2**53, "integer 9007199254740992 outside the I-JSON safe range", id="2**53"),
    pytest.param(-(2**53), "integer -9007199254740992 outside the I-JSON safe range", id="-(2**53)"),
    pytest.param({1: "a"}, "object key 1 is not a string", id="int key"),
    pytest.param({None: "a"}, "object key None is not a string", id="None key"),
    pytest.param({True: "a"}, "object key True is not a string", id="bool key"),
    pytest.param({b"k": "a"}, "object key b'k' is not a string", id="bytes key"),
    pytest.param({"ok": {("a",): 1}}, "is not a string", id="nested tuple key"),
    pytest.param("\ud800", "string holds a lone surrogate", id="lone high surrogate"),
    pytest.param("\udc00", "string holds a lone surrogate", id="lone low surrogate"),
    pytest.param("ok\ud83d", "string holds a lone surrogate", id="truncated surrogate pair"),
    pytest.param(["fine", "\udfff"], "string holds a lone surrogate", id="lone surrogate in array"),
    pytest.param({"\ud800": 1}, "string holds a lone surrogate", id="lone surrogate key"),
    pytest.param({1, 2}, "type set cannot be canonically encoded", id="set"),
    pytest.param(frozenset({1}), "type frozenset cannot be canonically encoded", id="frozenset"),
    pytest.param(b"abc", "type bytes cannot be canonically encoded", id="bytes"),
    pytest.param(bytearray(b"abc"), "type bytearray cannot be canonically encoded", id="bytearray"),
    pytest.param(Decimal("1"), "type Decimal cannot be canonically encoded", id="Decimal"),
    pytest.param({"a": object()}, "type object cannot be canonically encoded", id="object"),
    pytest.param(_nested_lists(65), "value nested deeper than 64 levels", id="65 nested arrays"),
    pytest.param(_nested_dicts(65), "value nested deeper than 64 levels", id="65 nested objects"),
    pytest.param(_nested_lists(10_000), "value nested deeper than 64 levels", id="10000 nested arrays"),
    pytest.param(_cyclic_list(), "value nested deeper than 64 levels", id="cyclic list"),
]


@pytest.mark.parametrize(("value", "message"), NON_JSON_INVALID)
def test_canonical_bytes_rejects_value_outside_subset(value: Any, message: str) -> None:
    # Prepare
    expected_type = CanonicalEncodingError

    # Execute
    with pytest.raises(expected_type) as exc_info:
        canonical_bytes(value)

    # Assert
    assert type(exc_info.value) is expected_type
    assert message in str(exc_info.value)


def test_canonical_encoding_error_is_a_value_error() -> None:
    # Prepare / Execute
    with pytest.raises(ValueError) as exc_info:
        canonical_bytes(1.5)

    # Assert
    assert isinstance(exc_info.value, errors.ConfideCryptoError)


# --- parse_canonical must refuse non-canonical bytes -----------------------------------------------


@pytest.mark.parametrize("vector", VECTORS["noncanonical"], ids=[v["name"] for v in VECTORS["noncanonical"]])
def test_parse_canonical_rejects_noncanonical_vector(vector: dict[str, Any]) -> None:
    # Prepare
    data = _vector_bytes(vector)

    # Execute
    with pytest.raises(CanonicalEncodingError) as exc_info:
        parse_canonical(data)

    # Assert
    assert type(exc_info.value) is CanonicalEncodingError
    assert vector["message"] in str(exc_info.value)


def test_parse_canonical_rejects_65_levels_of_nesting() -> None:
    # Prepare
    data = b"[" * 65 + b"0" + b"]" * 65

    # Execute
    with pytest.raises(CanonicalEncodingError) as exc_info:
        parse_canonical(data)

    # Assert
    assert "value nested deeper than 64 levels" in str(exc_info.value)


def test_parse_canonical_rejects_integer_beyond_int_conversion_limit() -> None:
    # Prepare
    data = b"1" * 5000

    # Execute
    with pytest.raises(CanonicalEncodingError) as exc_info:
        parse_canonical(data)

    # Assert
    assert "not valid JSON" in str(exc_info.value)


def test_parse_canonical_rejects_pathologically_deep_input_with_canonical_error() -> None:
    # Prepare
    data = b"[" * 100_000 + b"]" * 100_000

    # Execute
    with pytest.raises(CanonicalEncodingError) as exc_info:
        parse_canonical(data)

    # Assert
    assert type(exc_info.value) is CanonicalEncodingError


# --- properties --------------------------------------------------------------------------------------

_ASTRAL_AND_EDGE = st.sampled_from(["\ue000", "\U0001f600", "\uffff", "\U00010000", "\x00", "\x7f", "/", '"'])
_CHARS = st.characters(exclude_categories=("Cs",)) | _ASTRAL_AND_EDGE
_TEXT = st.text(alphabet=_CHARS, max_size=12)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-MAX_SAFE_INT, max_value=MAX_SAFE_INT)
    | st.sampled_from([MAX_SAFE_INT, -MAX_SAFE_INT, 0])
    | _TEXT
)
JSON_VALUES = st.recursive(
    _SCALARS,
    lambda children: st.lists(children, max_size=6) | st.dictionaries(_TEXT, children, max_size=6),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(value=JSON_VALUES)
def test_canonical_bytes_equals_rfc8785_reference(value: Any) -> None:
    # Prepare
    reference = rfc8785.dumps(value)

    # Execute
    encoded = canonical_bytes(value)

    # Assert
    assert encoded == reference


@settings(max_examples=400, deadline=None)
@given(value=JSON_VALUES)
def test_parse_canonical_inverts_canonical_bytes(value: Any) -> None:
    # Prepare
    encoded = canonical_bytes(value)

    # Execute
    parsed = parse_canonical(encoded)

    # Assert
    assert parsed == value
    assert canonical_bytes(parsed) == encoded


@settings(max_examples=200, deadline=None)
@given(value=st.dictionaries(_TEXT, _SCALARS, min_size=1, max_size=6))
def test_parse_canonical_rejects_whitespace_padded_encoding(value: dict[str, Any]) -> None:
    # Prepare
    padded = b" " + canonical_bytes(value)

    # Execute
    with pytest.raises(CanonicalEncodingError) as exc_info:
        parse_canonical(padded)

    # Assert
    assert "not in canonical form" in str(exc_info.value)


def test_deep_input_is_refused_even_when_a_library_raised_the_recursion_limit() -> None:
    # py_ecc (a web3 dependency) sets the limit to 100000: the C JSON scanner would then overflow the
    # stack (a crash) on deep input before Python noticed; parse_canonical bounds the depth itself.
    import sys

    old = sys.getrecursionlimit()
    sys.setrecursionlimit(100_000)
    try:
        with pytest.raises(CanonicalEncodingError, match="nested deeper than 64"):
            parse_canonical(b"[" * 100_000 + b"]" * 100_000)
        with pytest.raises(CanonicalEncodingError, match="nested deeper than 64"):
            parse_canonical(b'{"a":' * 65 + b"1" + b"}" * 65)
    finally:
        sys.setrecursionlimit(old)
    ok = b'{"a":' * 63 + b'"[[[[{{{{\\"]"' + b"}" * 63  # brackets inside strings do not count
    assert parse_canonical(ok) is not None


def test_importing_the_evm_backend_leaves_the_recursion_limit_alone() -> None:
    import subprocess
    import sys

    code = (
        "import sys; a = sys.getrecursionlimit(); import confide.ledger.evm; "
        "print(a == sys.getrecursionlimit())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
