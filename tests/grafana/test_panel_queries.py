"""Every panel of every dashboard, queried as Grafana would against a real InfluxDB that the whole system filled
from a simulated scenario (tests/grafana/scenario.py): every query runs without an error, returns what the panel
promises, and the panels that count something count what the scenario did.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from facmon.kernel.daemons import Influxd, Mosquitto
from tests.grafana.expand import expand, load_dashboards, panels
from tests.grafana.scenario import ENTRAPPED, SILENT_CAMERA, Played, create_database, play

Series = list[dict[str, Any]]
Results = dict[str, Series]  # by refId


@pytest.fixture(scope="module")
def _played(
    mosquitto: Mosquitto, influxd: Influxd, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Played | BaseException]:
    db = f"grafana_{uuid.uuid4().hex[:8]}"
    create_database(influxd.url, db)
    site = f"t{uuid.uuid4().hex[:10]}"
    try:
        try:
            result: Played | BaseException = asyncio.run(
                play(influxd.url, db, mosquitto.port, site, tmp_path_factory.mktemp("grafana"))
            )
        except Exception as exc:
            result = exc
        yield result
    finally:
        httpx.post(f"{influxd.url}/query", data={"q": f'DROP DATABASE "{db}"'})


@pytest.fixture
def played(_played: Played | BaseException) -> Played:
    # A failed scenario is reported once, not replayed for every panel.
    if isinstance(_played, BaseException):
        pytest.fail(f"the scenario did not play: {_played!r}")
    return _played


def run_panel(played: Played, panel: dict[str, Any], *, building: list[str] | None = None) -> Results:
    variables = {"site": [played.site], "building": building or ["b1", "b2"]}
    results: Results = {}
    for target in panel["targets"]:
        query = expand(
            target["query"],
            start=played.start,
            end=played.end,
            variables=variables,
            max_data_points=panel.get("maxDataPoints", 1000),
        )
        resp = httpx.post(f"{played.url}/query", data={"db": played.db, "q": query, "epoch": "ms"}, timeout=10)
        resp.raise_for_status()
        result = resp.json()["results"][0]
        assert "error" not in result, f"{panel['title']} {target['refId']}: {result['error']}\n{query}"
        results[target["refId"]] = result.get("series", [])
    return results


def rows(series: Series) -> list[dict[str, Any]]:
    """Every row of every series as a dict, tags included (as a table panel shows them)."""
    return [
        dict(s.get("tags", {})) | dict(zip(s["columns"], values, strict=True)) for s in series for values in s["values"]
    ]


def by_device(series: Series, column: str) -> dict[str, Any]:
    return {row["device"]: row[column] for row in rows(series)}


def total(series: Series) -> float:
    return sum(v for row in rows(series) for k, v in row.items() if k != "time" and isinstance(v, int | float))


# -- what each panel must show for the scenario -------------------------------------------------------------------


def broken_now(r: Results) -> None:
    found = {(row["device"], row["code"] or row["type"]) for row in rows(r["A"])}
    assert {
        ("b1-e1", "2"),
        (ENTRAPPED, "entrapment"),
        ("b1-fp", "fault"),
        ("b2-fp", "disabled"),
        ("b1-fp", "battery_fault"),
        ("gate-2", "limit_timeout"),
        ("cam-1", "tamper"),
        (SILENT_CAMERA, "comm_lost"),
    } <= found
    assert ("b1-e1", "comm_lost") not in found, "b1-e1's link came back"
    assert ("b2-fp", "fire") not in found, "the fire alarm cleared"


def intact_now(r: Results) -> None:
    (value,) = [row["last"] for row in rows(r["A"])]
    assert 0 < value < 100, "a point in fault and one disabled"


def open_by_status(r: Results) -> None:
    counts = {ref: total(series) for ref, series in r.items()}
    # 9 open: 3 elevator work orders on site after the card read, 6 others still open.
    assert counts == {"A": 6, "B": 0, "C": 3}, counts


def breaches_by_clock(r: Results) -> None:
    assert {row["clock"]: row["count"] for row in rows(r["A"])} == {"acknowledge": 1, "on_site": 3}


def status_board(r: Results) -> None:
    board = {row["device"]: row for row in rows(r["A"])}
    assert set(board) == {"b1-e1", "b1-e2", ENTRAPPED}
    assert board["b1-e1"]["fault_code"] == 2
    assert board["b1-e2"]["e_code"] != 0
    for row in board.values():
        assert {"service_mode", "floor", "door", "power_source"} <= row.keys()
        assert row["service_mode"] is not None
        assert row["floor"] is not None


def elevator_faults(r: Results) -> None:
    counts: dict[str, float] = {}
    for s in r["A"]:
        counts[s["tags"]["device"]] = sum(v[1] for v in s["values"])
    # A fault that clears and comes back between polls counts again: at least one each.
    assert set(counts) == {"b1-e1", "b1-e2", ENTRAPPED}, counts
    assert all(n >= 1 for n in counts.values()), counts


def entrapments(r: Results) -> None:
    assert total(r["A"]) == 1


def trips(r: Results) -> None:
    assert r["A"], "trip counts per car"
    assert all(v[1] >= 0 for s in r["A"] for v in s["values"])


def merged(r: Results, *refs: str) -> list[dict[str, Any]]:
    """Grafana's `merge` transformation: rows of the tables joined on the columns they share."""
    tables = [rows(r[ref]) for ref in refs]
    out = [dict(row) for row in tables[0]]
    for table in tables[1:]:
        for row in table:
            key = {k: v for k, v in row.items() if k in {"time", "building", "device"}}
            match = next((o for o in out if all(o.get(k) == v for k, v in key.items())), None)
            if match is None:
                out.append(dict(row))
            else:
                match.update(row)
    return out


def availability(r: Results) -> None:
    share = {row["device"]: row.get("available", 0) / row["readings"] for row in merged(r, "B", "A")}
    assert set(share) == {"b1-e1", "b1-e2", ENTRAPPED}
    assert share["b1-e1"] < 0.2, "b1-e1 had its door fault from 10 s in to the end"
    assert all(0 <= v <= 1 for v in share.values())


def arrival_compliance(r: Results) -> None:
    (row,) = merged(r, "A", "B")
    # 3 elevator work orders (door close fault, door open fault, entrapment), all 3 on site after 20 min.
    assert (row["opened"], row["late"]) == (3, 3)
    assert 1 - row["late"] / row["opened"] == 0


def intact_over_time(r: Results) -> None:
    assert any(v[1] is not None and v[1] < 100 for s in r["A"] for v in s["values"]), "site rate below 100 %"
    panel_min = {s["tags"]["device"]: min(v[1] for v in s["values"] if v[1] is not None) for s in r["B"]}
    assert set(panel_min) == {"b1-fp", "b2-fp"}
    assert all(v < 100 for v in panel_min.values())


def fire_alarms(r: Results) -> None:
    assert total(r["A"]) == 1


def points_not_intact(r: Results) -> None:
    found = {(row["device"], row["point"], row["state"]) for row in rows(r["A"])}
    assert found == {("b1-fp", "1-004", "fault"), ("b2-fp", "1-033", "disabled")}


def alarms_and_panel_faults(r: Results) -> None:
    found = {(row["device"], row["code"], row["type"]) for row in rows(r["A"])}
    assert {
        ("b2-fp", "fire", "fault_raised"),
        ("b2-fp", "fire", "fault_cleared"),
        ("b1-fp", "battery_fault", "fault_raised"),
    } <= found


def overdue_checks(r: Results) -> None:
    # Nothing is overdue in a scenario of minutes (a check period is a month; fire clocks are hours): the queries
    # run, and count nothing.
    assert total(r["A"]) == 0
    assert total(r["B"]) == 0


def barrier_faults(r: Results) -> None:
    assert {(s["tags"]["device"], s["tags"]["code"]) for s in r["A"]} == {("gate-2", "limit_timeout")}


def barriers_now(r: Results) -> None:
    board = {row["device"]: row for row in rows(r["A"])}
    assert set(board) == {"gate-1", "gate-2"}
    assert all(row["position"] and row["cycles"] is not None for row in board.values())


def card_reads(r: Results) -> None:
    granted, denied = by_device(r["A"], "granted"), by_device(r["B"], "denied")
    assert granted["gate-1"] >= 2, "5A5A0001 and the technician's card"
    assert granted["gate-2"] >= 1
    assert denied["gate-1"] >= 1, "0000BEEF refused"


def offline(r: Results) -> None:
    assert [row["device"] for row in rows(r["A"])] == [SILENT_CAMERA]


def last_heartbeat(r: Results) -> None:
    last = by_device(r["A"], "time")
    assert set(last) == {"cam-1", SILENT_CAMERA}
    assert last[SILENT_CAMERA] < last["cam-1"] - 60_000, "the silent camera's last heartbeat lags"


def camera_conditions(r: Results) -> None:
    assert {(row["device"], row["code"]) for row in rows(r["A"])} == {("cam-1", "tamper")}


def open_work_orders(r: Results) -> None:
    table = {(row["device"], row["fault"]): row["status"] for row in rows(r["A"])}
    assert len(table) == 9, table
    assert table[(ENTRAPPED, "entrapment")] == "on_site"
    assert table[(SILENT_CAMERA, "comm_lost")] == "open"


def opened_resolved(r: Results) -> None:
    assert sum(v[1] for s in r["A"] for v in s["values"]) == 9
    assert r["B"] == [], "nothing resolved in the scenario"


def sla_breaches(r: Results) -> None:
    found = {(row["device"], row["clock"]) for row in rows(r["A"])}
    assert found == {(ENTRAPPED, "acknowledge"), (ENTRAPPED, "on_site"), ("b1-e1", "on_site"), ("b1-e2", "on_site")}


def time_to_arrive(r: Results) -> None:
    seconds = {row["device"]: row["seconds_to_arrive"] for row in rows(r["A"])}
    assert set(seconds) == {"b1-e1", "b1-e2", ENTRAPPED}
    assert all(20 * 60 <= s <= 25 * 60 for s in seconds.values()), seconds


EXPECT: dict[tuple[str, str], Callable[[Results], None]] = {
    ("site-overview", "What is broken now"): broken_now,
    ("site-overview", "Fire equipment intact rate now"): intact_now,
    ("site-overview", "Open work orders by status"): open_by_status,
    ("site-overview", "SLA clocks breached"): breaches_by_clock,
    ("elevators", "Status board"): status_board,
    ("elevators", "Faults raised"): elevator_faults,
    ("elevators", "Entrapments"): entrapments,
    ("elevators", "Trips"): trips,
    ("elevators", "Availability (share of readings in normal service without a fault)"): availability,
    ("elevators", "On site within the contract clock"): arrival_compliance,
    ("fire-systems", "Fire equipment intact rate"): intact_over_time,
    ("fire-systems", "Fire alarms"): fire_alarms,
    ("fire-systems", "Points not intact"): points_not_intact,
    ("fire-systems", "Fire alarms and panel faults"): alarms_and_panel_faults,
    ("fire-systems", "Overdue checks and fire SLA breaches"): overdue_checks,
    ("access-cameras", "Barrier faults"): barrier_faults,
    ("access-cameras", "Barriers now"): barriers_now,
    ("access-cameras", "Card reads per gate"): card_reads,
    ("access-cameras", "Cameras and barriers offline"): offline,
    ("access-cameras", "Camera last heartbeat"): last_heartbeat,
    ("access-cameras", "Camera conditions open now"): camera_conditions,
    ("work-orders", "Open work orders"): open_work_orders,
    ("work-orders", "Opened and resolved"): opened_resolved,
    ("work-orders", "SLA breaches (overdue)"): sla_breaches,
    ("work-orders", "Time to arrive"): time_to_arrive,
}

# Queries the scenario gives nothing to: what they would count takes longer than minutes of site time.
MAY_BE_EMPTY = {
    ("site-overview", "Open work orders by status", "B"),  # a bare acknowledge: every arrival is on_site at once
    ("fire-systems", "Overdue checks and fire SLA breaches", "A"),  # a check period is a month
    ("fire-systems", "Overdue checks and fire SLA breaches", "B"),  # fire clocks are hours
    ("work-orders", "Opened and resolved", "B"),  # nobody resolves anything
}

PANELS = [(name, panel) for name, board in load_dashboards().items() for panel in panels(board) if "targets" in panel]


def test_every_panel_has_an_expectation() -> None:
    assert {(name, panel["title"]) for name, panel in PANELS} == set(EXPECT)


@pytest.mark.services
@pytest.mark.parametrize(("board", "panel"), PANELS, ids=[f"{n}/{p['title']}" for n, p in PANELS])
def test_panel_shows_the_scenario(played: Played, board: str, panel: dict[str, Any]) -> None:
    results = run_panel(played, panel)
    for ref, series in results.items():
        assert series or (board, panel["title"], ref) in MAY_BE_EMPTY, f"{ref}: no series"
    EXPECT[(board, panel["title"])](results)


@pytest.mark.services
@pytest.mark.parametrize(("board", "panel"), PANELS, ids=[f"{n}/{p['title']}" for n, p in PANELS])
def test_building_variable_filters(played: Played, board: str, panel: dict[str, Any]) -> None:
    """With building = b2 only, no row of b1 devices comes back (and the queries still run)."""
    results = run_panel(played, panel, building=["b2"])
    devices = {str(row.get("device")) for series in results.values() for row in rows(series)}
    devices |= {s.get("tags", {}).get("device", "") for series in results.values() for s in series}
    assert not {d for d in devices if d.startswith("b1-") or d in {"gate-1", "cam-1"}}, devices
