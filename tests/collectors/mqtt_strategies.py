"""Hypothesis strategies for vendor payloads, read off the driver file: good ones, and bad ones that are wrong in
exactly one known way (so a test knows which rejection reason to expect)."""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import strategies as st

from collectors.mqtt.codec import Problem
from collectors.mqtt.driver import FieldSpec, JsonType, MessageSpec

INT64 = (-(2**63), 2**63 - 1)


def value(spec: FieldSpec) -> st.SearchStrategy[Any]:
    """Any legal value of a field."""
    if spec.enum is not None:
        return st.sampled_from(spec.enum)
    if spec.type is JsonType.BOOLEAN:
        return st.booleans()
    if spec.type is JsonType.STRING:
        if spec.pattern is not None:
            return st.from_regex(spec.pattern, fullmatch=True).filter(lambda s: len(s) <= spec.max_length)
        return st.text(max_size=spec.max_length)
    lo = spec.min if spec.min is not None else INT64[0]
    hi = spec.max if spec.max is not None else INT64[1]
    if spec.type is JsonType.INTEGER:
        return st.integers(int(lo), int(hi))
    return st.integers(int(lo), int(hi)) | st.floats(lo, hi, allow_nan=False, allow_infinity=False)


@st.composite
def payload(draw: st.DrawFn, spec: MessageSpec) -> dict[str, Any]:
    """A good payload: every required field, some of the optional ones."""
    out = {}
    for name, field in spec.fields.items():
        if field.required or draw(st.booleans()):
            out[name] = draw(value(field))
    return out


def _wrong_type(spec: FieldSpec) -> st.SearchStrategy[Any]:
    others: list[st.SearchStrategy[Any]] = [
        st.lists(st.integers(), max_size=2),
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=1),
    ]
    if spec.type is not JsonType.STRING:
        others.append(st.text(max_size=10))
    if spec.type is not JsonType.BOOLEAN:
        others.append(st.booleans())
    if spec.type is JsonType.STRING or spec.type is JsonType.BOOLEAN:
        others.append(st.integers() | st.floats(allow_nan=False, allow_infinity=False))
    if spec.type is JsonType.INTEGER:
        # JSON numbers with a fraction or exponent are not integers, even 3.0.
        others.append(st.floats(allow_nan=False, allow_infinity=False))
    if spec.required:
        others.append(st.none())
    return st.one_of(others)


def _illegal(spec: FieldSpec) -> tuple[Problem, st.SearchStrategy[Any]] | None:
    """A value of the right type the field does not allow, with the reason it is refused; None if there is none."""
    if spec.enum is not None:
        legal = set(spec.enum)
        base = st.text(max_size=12) if spec.type is JsonType.STRING else st.integers()
        return Problem.NOT_IN_ENUM, base.filter(lambda v: v not in legal)
    if spec.type is JsonType.STRING and spec.pattern is not None:
        pattern = spec.pattern
        return Problem.BAD_FORMAT, st.text(max_size=12).filter(lambda s: not re.fullmatch(pattern, s))
    if spec.type in (JsonType.INTEGER, JsonType.NUMBER):
        hi = spec.max if spec.max is not None else INT64[1]
        lo = spec.min if spec.min is not None else INT64[0]
        above = st.integers(int(hi) + 1, int(hi) + 10**12)
        below = st.integers(int(lo) - 10**12, int(lo) - 1)
        if spec.type is JsonType.NUMBER:
            above |= st.floats(hi, 1e300, exclude_min=True)
            below |= st.floats(-1e300, lo, exclude_max=True)
        return Problem.OUT_OF_RANGE, above | below
    return None


@st.composite
def bad_payload(draw: st.DrawFn, spec: MessageSpec) -> tuple[Problem, bytes]:
    """A payload of this message wrong in one way, and the reason the collector must give."""
    good = draw(payload(spec))
    fields = spec.fields
    ways = ["bad_json", "not_object", "unknown_field", "wrong_type", "not_utf8"]
    if any(f.required for f in fields.values()):
        ways.append("missing_field")
    illegal = {name: _illegal(f) for name, f in fields.items() if _illegal(f) is not None}
    if illegal:
        ways.append("illegal")
    way = draw(st.sampled_from(ways))
    if way == "bad_json":
        text = json.dumps(good)
        return Problem.BAD_JSON, text[: draw(st.integers(0, len(text) - 1))].encode()
    if way == "not_object":
        other = draw(st.lists(st.integers(), max_size=3) | st.integers() | st.text(max_size=5) | st.booleans())
        return Problem.NOT_OBJECT, json.dumps(other).encode()
    if way == "not_utf8":
        return Problem.NOT_UTF8, b"\xff" + draw(st.binary(max_size=20))
    if way == "unknown_field":
        extra = draw(st.text(min_size=1, max_size=10).filter(lambda k: k not in fields))
        return Problem.UNKNOWN_FIELD, json.dumps({**good, extra: draw(st.integers())}).encode()
    if way == "missing_field":
        name = draw(st.sampled_from([n for n, f in fields.items() if f.required]))
        return Problem.MISSING_FIELD, json.dumps({k: v for k, v in good.items() if k != name}).encode()
    if way == "wrong_type":
        name = draw(st.sampled_from(sorted(fields)))
        return Problem.WRONG_TYPE, json.dumps({**good, name: draw(_wrong_type(fields[name]))}).encode()
    name = draw(st.sampled_from(sorted(illegal)))
    problem, strategy = illegal[name]  # type: ignore[misc]  # filtered to the fields that have one
    return problem, json.dumps({**good, name: draw(strategy)}).encode()
