"""Canonical JSON: RFC 8785 (JSON Canonicalization Scheme) for the value subset we sign.

Every signed structure in Confide (transactions, block headers, genesis) is encoded
with :func:`canonical_bytes`. The subset is deliberately narrow so that the same
value gives the same bytes on every node and in every language:

* objects with string keys, arrays, strings, booleans, null, and integers in the
  I-JSON safe range (|n| <= 2**53 - 1);
* **no floats** (the ledger contract is integer-only; amounts are fixed point);
* strings must be valid Unicode (no lone surrogates).

For that subset RFC 8785 reduces to: keys sorted by UTF-16 code units, no
whitespace, minimal escaping (``"`` ``\\`` and control characters, ``\\u00xx`` in
lower-case hex) and UTF-8 output. Python's ``json`` encoder produces exactly
that escaping, so the fast path is ``json.dumps``; keys holding characters
outside the BMP (where code-point order and UTF-16 order differ) take a slower
exact path. ``tests/crypto/test_canonical.py`` cross-checks against the
independent ``rfc8785`` implementation.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .errors import CanonicalEncodingError

__all__ = ["MAX_SAFE_INT", "canonical_bytes", "parse_canonical"]

MAX_SAFE_INT = 2**53 - 1

_dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":")).encode


def _utf16_key(s: str) -> bytes:
    return s.encode("utf-16-be", "surrogatepass")


def _check_str(s: str) -> bool:
    """Validate a string; return True if it holds a non-BMP character."""
    if s.isascii():
        return False
    try:
        s.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CanonicalEncodingError("string holds a lone surrogate") from exc
    return any(ord(c) > 0xFFFF for c in s)


def _validate(value: Any, depth: int = 0) -> bool:
    """Walk the value; raise on anything outside the subset.

    Returns True when some object key needs UTF-16 ordering (slow path).
    """
    if depth > 64:
        raise CanonicalEncodingError("value nested deeper than 64 levels")
    t = type(value)
    if t is str:
        if not value.isascii():
            _check_str(value)
        return False
    if t is bool or value is None:
        return False
    if t is int:
        if not -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
            raise CanonicalEncodingError(f"integer {value} outside the I-JSON safe range")
        return False
    if t is dict:
        if value and depth >= 64:  # its members would sit deeper than 64 levels
            raise CanonicalEncodingError("value nested deeper than 64 levels")
        slow = False
        for k, v in value.items():
            if type(k) is not str:
                raise CanonicalEncodingError(f"object key {k!r} is not a string")
            if not k.isascii():
                slow |= _check_str(k)
            # Leaves inline: a call per leaf dominated the cost of signing and admitting txs.
            tv = type(v)
            if tv is str:
                if not v.isascii():
                    _check_str(v)
            elif tv is int:
                if not -MAX_SAFE_INT <= v <= MAX_SAFE_INT:
                    raise CanonicalEncodingError(f"integer {v} outside the I-JSON safe range")
            elif not (tv is bool or v is None):
                slow |= _validate(v, depth + 1)
        return slow
    if t is list or t is tuple:
        slow = False
        for v in value:
            slow |= _validate(v, depth + 1)
        return slow
    if t is float:
        raise CanonicalEncodingError("floats are not allowed in signed data; use integers")
    raise CanonicalEncodingError(f"type {t.__name__} cannot be canonically encoded")


def _encode_slow(value: Any) -> str:
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: _utf16_key(kv[0]))
        return "{" + ",".join(_dumps(k) + ":" + _encode_slow(v) for k, v in items) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_encode_slow(v) for v in value) + "]"
    return _dumps(value)


def canonical_bytes(value: Any) -> bytes:
    """Encode ``value`` as RFC 8785 canonical JSON (UTF-8 bytes).

    Raises :class:`CanonicalEncodingError` for values outside the signed subset.
    """
    slow = _validate(value)
    text = _encode_slow(value) if slow else _dumps(value)
    return text.encode("utf-8")


def _reject_float(s: str) -> Any:
    raise CanonicalEncodingError(f"number {s} is not an integer")


def _checked_int(s: str) -> int:
    n = int(s)
    if not -MAX_SAFE_INT <= n <= MAX_SAFE_INT:
        raise CanonicalEncodingError(f"integer {s} outside the I-JSON safe range")
    return n


def _reject_constant(s: str) -> Any:
    raise CanonicalEncodingError(f"{s} is not valid JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise CanonicalEncodingError(f"duplicate object key {k!r}")
        out[k] = v
    return out


MAX_DEPTH = 64
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_BRACKET = re.compile(rb"[\[\]{}]")


def _check_depth(data: bytes) -> None:
    """Refuse nesting deeper than :data:`MAX_DEPTH` before the C JSON scanner sees it: its recursion
    is bounded only by the interpreter's recursion limit, which a library may raise far above what
    the C stack holds (py_ecc, a web3 dependency, sets 100000), and then deep input crashes the
    process instead of raising."""
    depth = 0
    for m in _BRACKET.finditer(_STRING.sub(b'""', data)):
        if m.group() in (b"[", b"{"):
            depth += 1
            if depth > MAX_DEPTH:
                raise CanonicalEncodingError(f"value nested deeper than {MAX_DEPTH} levels")
        else:
            depth -= 1


def parse_canonical(data: bytes) -> Any:
    """Parse bytes that must already be canonical; raise if they are not.

    Rejecting non-canonical input means one value has exactly one encoding on
    the ledger, so hashes of stored bytes and of re-encoded values agree.
    """
    _check_depth(data)
    try:
        value = json.loads(
            data.decode("utf-8"),
            parse_float=_reject_float,
            parse_int=_checked_int,
            parse_constant=_reject_constant,
            object_pairs_hook=_no_duplicates,
        )
    except CanonicalEncodingError:
        raise
    except RecursionError:
        raise CanonicalEncodingError("JSON nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise CanonicalEncodingError(f"not valid JSON: {exc}") from exc
    if canonical_bytes(value) != data:
        raise CanonicalEncodingError("JSON is valid but not in canonical form")
    return value
