"""The historian's own line-protocol encoder: random measurements, tags and fields written through it into a real
influxd come back exactly as they went in (names, values and types); what line protocol cannot carry is refused.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facmon.historian.lines import Unstorable, encode_line, reading_line
from facmon.kernel.daemons import Influxd
from facmon.kernel.model import DeviceKind, DeviceRef, Reading, Value
from tests.conftest import influxql

# Characters line protocol gives meaning to, and text from far away: the names and strings are drawn mostly from
# these, with any other character now and then.
AWKWARD = " ,=\"\\'\t\n\r#=ünï中文字段😀"
INT64 = (-(2**63), 2**63 - 1)
# Names InfluxDB itself keeps for its own (a field or tag called `time` is refused; InfluxQL reads `_field`, and a
# key starting with `_` is allowed but not worth the doubt).
RESERVED = {"time"}


def _text(min_size: int) -> st.SearchStrategy[str]:
    return st.text(st.sampled_from(AWKWARD) | st.characters(exclude_categories=("Cs", "Cc")), min_size=min_size)


def _writable(name: str) -> bool:
    try:
        encode_line("m", {name: "v", "k": name}, {name: 1}, 0)
    except Unstorable:
        return False
    return True


names = _text(1).filter(_writable).filter(lambda n: n not in RESERVED and not n.startswith("_"))
measurements = names.filter(lambda n: not n.startswith("#") and "=" not in n)
values: st.SearchStrategy[Value] = st.one_of(
    st.integers(*INT64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    _text(0).filter(lambda s: "\x00" not in s),
)


def _query(url: str, db: str, q: str) -> list[dict[str, Any]]:
    return influxql(url, db, q)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    measurement=measurements,
    tags=st.dictionaries(names, names, max_size=4),
    fields=st.dictionaries(names, values, min_size=1, max_size=5),
    ts_ns=st.integers(-(2**62), 2**62),
)
def test_what_goes_through_the_encoder_comes_back_from_influxdb_exactly(
    influxd: Influxd, measurement: str, tags: dict[str, str], fields: dict[str, Value], ts_ns: int
) -> None:
    fields = {key: value for key, value in fields.items() if key not in tags}
    if not fields:
        return
    line = encode_line(measurement, tags, fields, ts_ns)
    assert line is not None
    db = f"p_{uuid.uuid4().hex[:12]}"
    httpx.post(f"{influxd.url}/query", data={"q": f'CREATE DATABASE "{db}"'}).raise_for_status()
    try:
        resp = httpx.post(f"{influxd.url}/write", params={"db": db, "precision": "ns"}, content=line.encode())
        assert resp.status_code == 204, (line, resp.text)
        [series] = _query(influxd.url, db, "SELECT * FROM /.*/")
        assert series["name"] == measurement
        [row] = [dict(zip(series["columns"], row, strict=True)) for row in series["values"]]
        assert row.pop("time") == ts_ns
        assert {k: v for k, v in row.items() if k in tags} == tags
        # InfluxDB's JSON writes a big whole float without a point (6.04e16 as 60408429889551550): read as a float.
        got = {k: float(v) if isinstance(fields.get(k), float) else v for k, v in row.items() if k not in tags}
        assert got == fields
        types = {key: kind for key, kind in _query(influxd.url, db, "SHOW FIELD KEYS")[0]["values"]}
        assert types == {key: _influx_type(value) for key, value in fields.items()}
    finally:
        httpx.post(f"{influxd.url}/query", data={"q": f'DROP DATABASE "{db}"'})


def _influx_type(value: Value) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    return "float" if isinstance(value, float) else "string"


@pytest.mark.parametrize(
    ("measurement", "tags", "fields"),
    [
        ("m", {"t": "ends with \\"}, {"f": 1}),
        ("m", {"t": "a\\,b"}, {"f": 1}),
        ("m", {"t\\=": "v"}, {"f": 1}),
        ("m", {"t": "two\nlines"}, {"f": 1}),
        ("m", {"t": "v"}, {"f\\ x": 1}),
        ("m", {"t": "v"}, {"": 1}),
        ("#comment", {}, {"f": 1}),
        ("", {}, {"f": 1}),
        ("m\r", {}, {"f": 1}),
        ("m", {}, {"\tf": 1}),
        ("\tm", {}, {"f": 1}),
    ],
)
def test_names_line_protocol_cannot_carry_are_refused(
    measurement: str, tags: dict[str, str], fields: dict[str, Value]
) -> None:
    with pytest.raises(Unstorable):
        encode_line(measurement, tags, fields, 0)


def test_the_same_device_is_written_the_same_whether_its_tags_were_cached_or_not() -> None:
    ref = DeviceRef(site="s 1", building="b,1", device="e=1", kind=DeviceKind.ELEVATOR, model="m")
    ts = datetime(2026, 3, 1, tzinfo=UTC)
    first = reading_line(Reading(ref=ref, ts=ts, values={"floor": 1}))
    again = reading_line(Reading(ref=ref, ts=ts, values={"floor": 2}))
    point = reading_line(Reading(ref=ref, ts=ts, values={"floor": 2}, point="1-001"))
    assert first == "elevator,building=b\\,1,device=e\\=1,model=m,site=s\\ 1 floor=1i 1772323200000000000"
    assert again == first.replace("floor=1i", "floor=2i")
    assert (
        point
        == "elevator_point,building=b\\,1,device=e\\=1,model=m,point=1-001,site=s\\ 1 floor=2i 1772323200000000000"
    )
