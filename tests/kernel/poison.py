"""Hypothesis strategies for poison: payloads written to stop whatever parses them.

Each is built around a JSON object that is otherwise fine (`around`), so the poison sits where a field would: lone
surrogate escapes in a value or a key, bytes that are not UTF-8, nesting 1,000 to 20,000 deep, numbers too large
for a float or with thousands of digits, NaN and Infinity, duplicate keys, several megabytes, and random bytes.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

# One shared 5 MB payload: drawing a fresh one for every example would make the tests slow, not stronger.


def live(examples: int) -> settings:
    """Hypothesis settings for poison sent through real services: `examples` cases, no deadline (each goes through a
    broker), no example database, and no shrinking (a failing case says what it was; shrinking would replay it
    through the services for minutes)."""
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


FIVE_MB = b'{"blob": "' + b"A" * (5 * 1024 * 1024) + b'"}'


def _with(around: dict[str, Any], key: str, raw_value: str) -> bytes:
    """`around` with one more member whose value is the raw JSON text `raw_value` (not escaped again)."""
    body = json.dumps(around)[1:-1]
    member = f'"{key}": {raw_value}'
    return ("{" + (body + ", " if body else "") + member + "}").encode()


def _surrogate(draw: st.DrawFn) -> str:
    code = draw(st.integers(0xD800, 0xDFFF))
    return f"\\u{code:04x}"


@st.composite
def poison(draw: st.DrawFn, around: dict[str, Any]) -> tuple[str, bytes]:
    """(what kind of poison, the payload)."""
    kind = draw(
        st.sampled_from(
            [
                "surrogate_value",
                "surrogate_key",
                "surrogate_pair_reversed",
                "not_utf8",
                "deep_array",
                "deep_object",
                "huge_float",
                "huge_int",
                "constant",
                "duplicate_key",
                "five_mb",
                "random_bytes",
            ]
        )
    )
    key = draw(st.sampled_from([*around, "x"])) if around else "x"
    match kind:
        case "surrogate_value":
            text = draw(st.text(max_size=5)).replace("\\", "").replace('"', "")
            return kind, _with(around, "extra", f'"{text}{_surrogate(draw)}{text}"')
        case "surrogate_key":
            return kind, _with(around, f"k{_surrogate(draw)}", "1")
        case "surrogate_pair_reversed":
            low, high = draw(st.integers(0xDC00, 0xDFFF)), draw(st.integers(0xD800, 0xDBFF))
            return kind, _with(around, "extra", f'"\\u{low:04x}\\u{high:04x}"')
        case "not_utf8":
            bad = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80"]))
            good = _with(around, "extra", '"__"')
            return kind, good.replace(b"__", bad)
        case "deep_array":
            depth = draw(st.integers(1_000, 20_000))
            return kind, _with(around, "extra", "[" * depth + "]" * depth)
        case "deep_object":
            depth = draw(st.integers(1_000, 20_000))
            return kind, _with(around, "extra", '{"a": ' * depth + "1" + "}" * depth)
        case "huge_float":
            return kind, _with(around, key, draw(st.sampled_from(["1e400", "-1e400", "1" * 400 + ".0", "9e99999"])))
        case "huge_int":
            digits = draw(st.integers(41, 6_000))
            return kind, _with(around, key, draw(st.sampled_from(["", "-"])) + "1" + "0" * digits)
        case "constant":
            return kind, _with(around, key, draw(st.sampled_from(["NaN", "Infinity", "-Infinity"])))
        case "duplicate_key":
            return kind, _with({**around, key: 1}, key, "2")
        case "five_mb":
            return kind, FIVE_MB
        case _:
            return kind, draw(st.binary(min_size=1, max_size=200))
