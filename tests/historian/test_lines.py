from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import httpx

from facmon.historian.lines import event_line, reading_line, to_line
from facmon.kernel.daemons import Influxd
from facmon.kernel.model import DeviceKind, DeviceRef, Event, EventType, Reading
from tests.conftest import influxql

TS = datetime(2026, 3, 1, 8, 30, 15, 123456, tzinfo=UTC)
TS_NS = 1772353815123456000


def _ref(**overrides: str | None) -> DeviceRef:
    fields: dict[str, object] = {
        "site": "s1",
        "building": "b1",
        "device": "e1",
        "kind": DeviceKind.ELEVATOR,
        "model": "elev-gb-a",
        **overrides,
    }
    return DeviceRef.model_validate(fields)


def test_reading_is_one_point_of_its_kind_with_typed_fields() -> None:
    reading = Reading(
        ref=_ref(), ts=TS, values={"floor": 3, "speed_m_s": 1.5, "load_pct": 40.0, "door_open": True, "state": "idle"}
    )
    assert reading_line(reading) == (
        "elevator,building=b1,device=e1,model=elev-gb-a,site=s1 "
        'door_open=true,floor=3i,load_pct=40,speed_m_s=1.5,state="idle" ' + str(TS_NS)
    )


def test_role_is_a_tag_only_when_set() -> None:
    with_role = reading_line(Reading(ref=_ref(role="main"), ts=TS, values={"floor": 1}))
    assert with_role is not None
    assert with_role.startswith("elevator,building=b1,device=e1,model=elev-gb-a,role=main,site=s1 ")


def test_timestamp_is_the_readings_own_in_nanoseconds_whatever_its_zone() -> None:
    shanghai = timezone(timedelta(hours=8))
    line = reading_line(Reading(ref=_ref(), ts=TS.astimezone(shanghai), values={"floor": 1}))
    assert line is not None
    assert line.endswith(f" {TS_NS}")


def test_nothing_to_store_gives_no_line() -> None:
    assert reading_line(Reading(ref=_ref(), ts=TS, values={})) is None
    assert reading_line(Reading(ref=_ref(), ts=TS, values={"x": float("nan"), "y": float("inf")})) is None
    line = reading_line(Reading(ref=_ref(), ts=TS, values={"x": float("nan"), "floor": 2}))
    assert line is not None
    assert " floor=2i " in line


def test_event_line_has_code_only_when_set() -> None:
    fault = Event(ref=_ref(), ts=TS, type=EventType.FAULT_RAISED, code="2", message="door fault", id="abc")
    assert event_line(fault) == (
        "events,building=b1,code=2,device=e1,kind=elevator,model=elev-gb-a,site=s1,type=fault_raised "
        f'event_id="abc",message="door fault" {TS_NS}'
    )
    lost = Event(ref=_ref(), ts=TS, type=EventType.COMM_LOST, id="def")
    assert to_line(lost) == (
        "events,building=b1,device=e1,kind=elevator,model=elev-gb-a,site=s1,type=comm_lost "
        f'event_id="def",message="" {TS_NS}'
    )


def test_awkward_names_and_values_round_trip_through_influxdb(influxd: Influxd, influx_db: str) -> None:
    """What Point escapes, InfluxDB reads back exactly, with the types we meant."""
    ref = _ref(site="s 1,=x", building='b"1', device="e\\1", role="main gate")
    awkward = 'he said "stop", then \\ left=now'
    first = Reading(ref=ref, ts=TS, values={"count": 7, "ratio": 2.0, "ok": False, "note": awkward, "ünï": 1})
    second = Reading(ref=ref, ts=TS + timedelta(microseconds=1), values={"count": 8, "ratio": 2.5})
    lines = [reading_line(first), reading_line(second)]
    body = "\n".join(line for line in lines if line is not None)
    resp = httpx.post(f"{influxd.url}/write", params={"db": influx_db, "precision": "ns"}, content=body.encode())
    assert resp.status_code == 204, resp.text

    types = {row[0]: row[1] for row in influxql(influxd.url, influx_db, "SHOW FIELD KEYS FROM elevator")[0]["values"]}  # type: ignore[attr-defined]
    assert types == {"count": "integer", "ratio": "float", "ok": "boolean", "note": "string", "ünï": "integer"}

    series = influxql(influxd.url, influx_db, "SELECT * FROM elevator")
    columns: list[str] = series[0]["columns"]  # type: ignore[assignment]
    rows = [dict(zip(columns, row, strict=True)) for row in series[0]["values"]]  # type: ignore[attr-defined]
    assert [row["time"] for row in rows] == [TS_NS, TS_NS + 1000]
    assert rows[0]["site"] == "s 1,=x"
    assert rows[0]["building"] == 'b"1'
    assert rows[0]["device"] == "e\\1"
    assert rows[0]["role"] == "main gate"
    assert rows[0]["note"] == awkward
    assert (rows[0]["count"], rows[0]["ratio"], rows[0]["ok"]) == (7, 2.0, False)
    assert (rows[1]["count"], rows[1]["ratio"]) == (8, 2.5)
