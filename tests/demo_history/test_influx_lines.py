"""The history's fast line encoder writes exactly what the project's encoder (facmon.historian.lines) writes."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from facmon.demo_history.influx import EncoderMismatch, SeriesEncoder, fields_text, nanoseconds, series_key
from facmon.historian.lines import reading_line
from facmon.kernel.model import DeviceKind, DeviceRef, Reading, Value

REF = DeviceRef(site="sunrise garden", building="b,1", device="e=1", kind=DeviceKind.ELEVATOR, model="elev-gb-a")
START = datetime(2026, 1, 1, tzinfo=UTC)
NAMES = st.sampled_from(["floor", "door", "speed", "run_hours", "service_mode", "moving", "trips", "load pct"])
VALUES: st.SearchStrategy[Value] = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**62), max_value=2**62),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)


def _reference(values: Mapping[str, Value], at: datetime) -> str:
    line = reading_line(Reading(ref=REF, ts=at, values=dict(values)))
    assert line is not None
    return line


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(NAMES, VALUES, min_size=1).filter(lambda v: _reference_or_none(v) is not None),
    st.integers(min_value=0, max_value=10**9),
)
def test_every_line_is_the_projects_line(values: dict[str, Value], seconds: int) -> None:
    encoder = SeriesEncoder(_reference)
    at = START + timedelta(seconds=seconds, microseconds=seconds % 1000)
    encoder.line({"trips": 1}, START)
    assert encoder.line(values, at) == _reference(values, at)


def _reference_or_none(values: Mapping[str, Value]) -> str | None:
    return reading_line(Reading(ref=REF, ts=START, values=dict(values)))


def test_the_series_key_ends_at_the_first_unescaped_space() -> None:
    line = _reference({"floor": 3}, START)
    assert series_key(line) == r"elevator,building=b\,1,device=e\=1,model=elev-gb-a,site=sunrise\ garden"
    assert line == f"{series_key(line)} {fields_text({'floor': 3})} {nanoseconds(START)}"


def test_a_disagreement_is_an_error() -> None:
    encoder = SeriesEncoder(lambda values, at: "elevator,site=s floor=3 0")
    with pytest.raises(EncoderMismatch):
        encoder.line({"floor": 4}, START)
