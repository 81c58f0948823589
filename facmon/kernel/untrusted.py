"""Input nobody vouches for: JSON from devices and from the backbone, and text that must reach a log or a dead letter.

`parse_json` is `json.loads` with the limits a service needs to survive whatever arrives: a size bound checked before
parsing; nesting bounded (the C scanner's RecursionError, which is not a ValueError, is caught); no NaN or
Infinity, and no number that overflows to infinity (1e400) or takes quadratic time to convert (10**5000); no
duplicate keys; no lone surrogate escapes ("\\ud800"), which decode to a Python str that cannot be encoded as
UTF-8 again and so would break every later write of it (a dead letter, a log line, an SQLite row). Every refusal is
a `JsonRejected`, a ValueError whose `problem` is a short label for metrics and whose text says what is wrong.

`printable` bounds text and escapes lone surrogates, so a reason built from bad input can always be logged and stored.
"""

from __future__ import annotations

import json
import math
from typing import Any

# Digits a JSON integer may have. Python refuses more than 4,300 on its own, but converting a few thousand still
# costs quadratic time; 40 digits hold every 128-bit integer, and a consumer checks its own tighter range.
MAX_INT_DIGITS = 40


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


def _constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity, which JSON does not; a sender that writes them is broken.
    raise JsonRejected("not_finite", f"{name} is not JSON")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JsonRejected("not_finite", f"number {printable(text, 40)} is too large for a 64-bit float")
    return value


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise JsonRejected("too_long", f"integer of {len(text.lstrip('-'))} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def _string(where: str, text: str) -> str:
    if not utf8_safe(text):
        raise JsonRejected("surrogate", f"{where} holds a lone surrogate escape: {printable(text, 40)}")
    return text


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Which of two equal keys wins differs between parsers; a payload that says two things says nothing.
    out: dict[str, Any] = {}
    for key, value in pairs:
        _string("a key", key)
        if key in out:
            raise JsonRejected("duplicate_key", f"duplicate key {printable(key, 40)!r}")
        if isinstance(value, str):
            _string(f"the value of {printable(key, 40)!r}", value)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, str):
                    _string(f"an item of {printable(key, 40)!r}", item)
        out[key] = value
    return out


def parse_json(payload: bytes | str, *, max_bytes: int, overflow_to_inf: bool = False) -> Any:
    """The JSON value in `payload`, or JsonRejected (a ValueError) naming what is wrong with it.

    `overflow_to_inf`: a number too large for a float (1e400) parses as infinity, for a caller that refuses it
    itself with a better message (naming the field); NaN and Infinity written out are refused either way."""
    if len(payload) > max_bytes:
        raise JsonRejected("too_large", f"{len(payload)} bytes, more than {max_bytes}")
    if isinstance(payload, bytes):
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonRejected("not_utf8", f"not UTF-8 text: {exc.reason} at byte {exc.start}") from exc
    else:
        text = payload
    try:
        value = json.loads(
            text,
            parse_constant=_constant,
            parse_float=float if overflow_to_inf else _float,
            parse_int=_int,
            object_pairs_hook=_object,
        )
    except JsonRejected:
        raise
    except json.JSONDecodeError as exc:
        raise JsonRejected("bad_json", str(exc)) from exc
    except RecursionError as exc:
        # The scanner recurses once per level; Python's recursion limit ends a 10,000-deep array cleanly.
        raise JsonRejected("too_deep", "nested too deep") from exc
    if isinstance(value, str):
        _string("the text", value)
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, str):
                _string("an item", item)
    return value
