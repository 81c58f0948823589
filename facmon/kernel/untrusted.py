"""Input nobody vouches for: JSON from devices and from the backbone, and text that must reach a log or a dead letter.

`parse_json` is `json.loads` with the limits a service needs to survive whatever arrives: a size bound checked before
parsing; nesting bounded (the C scanner's RecursionError, which is not a ValueError, is caught); no NaN or
Infinity; no integer of more than 4,300 digits (Python's own limit; the numbers' ranges are the caller's to check,
see `finite_value`); no duplicate keys; no lone surrogate escapes ("\\ud800"), which decode to a Python str that
cannot be encoded as UTF-8 again and so would break every later write of it (a dead letter, a log line, an SQLite
row). Every refusal is a `JsonRejected`, a ValueError whose `problem` is a short label for metrics and whose text
says what is wrong.

`printable` bounds text and escapes lone surrogates, so a reason built from bad input can always be logged and stored.
"""

from __future__ import annotations

import json
import math
from typing import Any

# The range of an InfluxDB integer field: a bigger one would be refused far from its cause.
INT64 = (-(2**63), 2**63 - 1)


class JsonRejected(ValueError):
    """Input that is not JSON we accept: `problem` is a short label (metrics), the text says what is wrong."""

    def __init__(self, problem: str, detail: str) -> None:
        self.problem = problem
        self.detail = printable(detail, 300)
        super().__init__(self.detail)


def printable(text: str, limit: int) -> str:
    """`text` with lone surrogates written as escapes (\\ud800) and cut to at most `limit` characters ("..." at the
    end when cut): it can always be encoded as UTF-8, so logs and dead letters can carry it."""
    if limit < 4:
        raise ValueError("limit must be at least 4")
    # Escaping can only lengthen it; cut first so a 5 MB text costs no more than a short one.
    clean = text[: limit + 1].encode("utf-8", "backslashreplace").decode("utf-8")
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


def utf8_safe(text: str) -> bool:
    """Whether `text` can be encoded as UTF-8 (it holds no lone surrogate)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def finite_value(value: object) -> bool:
    """Whether a parsed number is one a consumer can store: a finite float (1e400 parses as infinity) or a 64-bit
    integer. True for anything that is not a number."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return INT64[0] <= value <= INT64[1]
    return True


def _constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity, which JSON does not; a sender that writes them is broken.
    raise JsonRejected("not_finite", f"{name} is not JSON")


def _string(where: str, text: str) -> None:
    if not utf8_safe(text):
        raise JsonRejected("surrogate", f"{where} holds a lone surrogate escape: {printable(text, 40)}")


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Which of two equal keys wins differs between parsers; a payload that says two things says nothing.
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise JsonRejected("duplicate_key", f"duplicate key {printable(key, 40)!r}")
            seen.add(key)
    return out


def _checked(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object of a text that holds escapes: its keys and string values checked for lone surrogates too."""
    for key, value in pairs:
        _string("a key", key)
        if isinstance(value, str):
            _string(f"the value of {printable(key, 40)!r}", value)
    return _unique(pairs)


def _strings_in_arrays(value: Any) -> None:
    """Check the strings outside objects: the top level and the items of arrays at any depth."""
    todo = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, str):
            _string("a string", item)
        elif isinstance(item, list):
            todo.extend(item)
        elif isinstance(item, dict):
            # Its own strings were checked as it was parsed; the arrays in it (at any depth) were not.
            todo.extend(v for v in item.values() if isinstance(v, list | dict))


# json.loads with hooks builds a decoder per call (7 % of a busy gateway's CPU); these are built once.
_PLAIN = json.JSONDecoder(parse_constant=_constant, object_pairs_hook=_unique)
_ESCAPED = json.JSONDecoder(parse_constant=_constant, object_pairs_hook=_checked)


def parse_json(payload: bytes | str, *, max_bytes: int) -> Any:
    """The JSON value in `payload`, or JsonRejected (a ValueError) naming what is wrong with it."""
    if len(payload) > max_bytes:
        raise JsonRejected("too_large", f"{len(payload)} bytes, more than {max_bytes}")
    if isinstance(payload, bytes):
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonRejected("not_utf8", f"not UTF-8 text: {exc.reason} at byte {exc.start}") from exc
    elif utf8_safe(payload):
        text = payload
    else:
        # A str handed in may hold raw surrogates, not only escapes of them.
        raise JsonRejected("surrogate", "the text holds a lone surrogate")
    # Text that was valid UTF-8 can bring in a lone surrogate only by an escape: text without "\u" (nearly every
    # message) skips the check of every string and parses at nearly the C scanner's own speed.
    escaped = "\\u" in text
    try:
        value = (_ESCAPED if escaped else _PLAIN).decode(text)
    except JsonRejected:
        raise
    except json.JSONDecodeError as exc:
        raise JsonRejected("bad_json", str(exc)) from exc
    except ValueError as exc:
        # int() of a number of more than 4,300 digits, refused by Python before its quadratic conversion.
        raise JsonRejected("too_long", f"a number too long to read ({printable(str(exc), 80)})") from exc
    except RecursionError as exc:
        # The scanner recurses once per level; Python's recursion limit ends a 10,000-deep array cleanly.
        raise JsonRejected("too_deep", "nested too deep") from exc
    if escaped:
        _strings_in_arrays(value)
    return value
