"""Every KPI of docs/kpis.md, recomputed from the raw records of a scripted period and required equal to the API's and
the monthly report's (issue 14, point 8).

The period runs through the production topology (tests/system/kpi_estate.py: every service its own process, short
SLA clocks through `facmon rules --sla`) and is driven as the site drives it (tests/system/kpi_script.py: simulator
commands, the barrier vendor's card reads, the API as the engineer and the technicians, and two events replayed on
the backbone with their own times). Then tests/system/kpi_recompute.py, which imports nothing of facmon, computes
every figure of docs/kpis.md from the SQLite tables (plain SQL), InfluxDB (InfluxQL over HTTP), the site files and the
script's log, and each figure's numerator, denominator, coverage and verdict must be the same as
`GET /api/v1/kpis` and `facmon report kpi --format json` give:

- the whole period at estate A, and a period whose bounds (in site time) fall one second after a work order's
  detection: the work order detected just before `from` is out, the one just before `to` is in;
- estate B's month that ended at 00:00 site time, with its car alarm of 23:59:30 (counted in that month though its
  deadlines fall in the next), and the months of this run at both estates.
"""

from __future__ import annotations

import ast
import asyncio
import json
import sys
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest
import yaml

from facmon.kernel.daemons import Influxd, Mosquitto
from tests.conftest import influxql
from tests.support import wait_for
from tests.system import kpi_raw, kpi_readings, kpi_recompute, kpi_story
from tests.system.kpi_compare import (
    cancellation_differences,
    differences,
    from_api,
    from_report,
    milestone_differences,
    when,
)
from tests.system.kpi_estate import KpiEstate, add_users, signed_in
from tests.system.kpi_raw import Influx, site_zone
from tests.system.kpi_recompute import Period, Recomputed, Records, month_bounds, recompute
from tests.system.kpi_script import Script

# What the recomputation may import: the standard library, httpx, and its own modules.
RECOMPUTATION = (kpi_raw, kpi_readings, kpi_story, kpi_recompute)
ALLOWED_IMPORTS = {"httpx", *(module.__name__ for module in RECOMPUTATION)}


async def _readings_of_every_device(estate: KpiEstate) -> None:
    """Until InfluxDB holds readings of every device of estate A, and the fire intact figure."""
    url, db, site = estate.influxd.url, estate.influx_db, estate.site_a

    async def heard() -> bool:
        queries = {
            "elevator": f"SELECT count(fault_code) FROM elevator WHERE site = '{site}' GROUP BY device",
            "fire_panel": f"SELECT count(points_intact) FROM fire_panel WHERE site = '{site}'",
            "gate": f"SELECT count(cycles) FROM gate WHERE site = '{site}'",
            "fire_intact": f"SELECT count(points_intact) FROM fire_intact WHERE site = '{site}'",
        }
        found = {name: await asyncio.to_thread(influxql, url, db, q) for name, q in queries.items()}
        return len(found["elevator"]) == 4 and all(found.values())

    await wait_for(heard, 90, "readings of every device of estate A", every_s=0.5)


def _intact_point(estate: KpiEstate) -> str:
    """A point of fp1 that is there and intact (a smoke detector in normal state)."""
    query = (
        f"SELECT last(state) FROM fire_panel_point WHERE site = '{estate.site_a}' AND device = 'fp1'"
        " AND \"type\" = 'smoke_detector' GROUP BY point"
    )
    series = influxql(estate.influxd.url, estate.influx_db, query)
    normal = sorted(s["tags"]["point"] for s in series if s["values"][0][1] == "normal")  # type: ignore[index]
    assert normal, series
    return normal[0]


def _records(estate: KpiEstate, site: dict[str, Any]) -> Records:
    profiles = yaml.safe_load(estate.path("sla.yaml").read_text())["profiles"]
    influx = Influx(estate.influxd.url, estate.influx_db)
    return Records(site, {p["id"]: p for p in profiles}, estate.database, influx)


def _site_time(at: datetime, site: dict[str, Any]) -> str:
    return at.astimezone(site_zone(site)).isoformat()


async def _api_periods(estate: KpiEstate, eng: httpx.AsyncClient, script: Script, began: datetime) -> list[Any]:
    """(label, records, period bounds, the API's answer) for each period asked of the API."""
    a, b = estate.sites
    detected = {label: await _detected(eng, wo) for label, wo in script.work_orders.items()}
    periods = [
        ("api whole run, estate A", a, began, began + timedelta(hours=2)),
        # Bounds one second after a detection, in site time: W1 falls before `from`, W5 before `to`.
        ("api cut, estate A", a, detected["W1"] + timedelta(seconds=1), detected["W5"] + timedelta(seconds=1)),
        ("api around 00:00, estate B", b, detected["WB"] - timedelta(minutes=1), datetime.now(UTC)),
    ]
    asked = []
    for label, site, start, end in periods:
        query = {"site": site["site"]["id"], "from": _site_time(start, site), "to": _site_time(end, site)}
        answer = await eng.get("/kpis", params=query)
        assert answer.status_code == 200, answer.text
        asked.append((label, site, start, end, answer.json()))
    # Asked half way through the run, of the run so far: judged as things stood then.
    midway = script.midway
    asked.append(("api half way, estate A", a, when(midway["from"]), when(midway["to"]), midway))
    return asked


async def _detected(api: httpx.AsyncClient, work_order: int) -> datetime:
    return when((await api.get(f"/work-orders/{work_order}")).json()["detected_at"])


async def _reports(estate: KpiEstate) -> list[Any]:
    """(label, site, month, report) of the months the run touched: this month at both estates (site time), and
    estate B's last month, which ended 30 s after its car alarm."""
    a, b = estate.sites
    this_month = datetime.now(UTC).astimezone(site_zone(b)).strftime("%Y-%m")
    first = datetime.strptime(this_month, "%Y-%m").replace(tzinfo=site_zone(b))
    last_month = (first - timedelta(days=1)).strftime("%Y-%m")
    wanted = [("report this month, estate A", a, this_month), ("report this month, estate B", b, this_month)]
    wanted.append(("report last month, estate B", b, last_month))
    made = await asyncio.gather(*(asyncio.to_thread(estate.report, s["site"]["id"], m) for _, s, m in wanted))
    return [(label, site, month, report) for (label, site, month), report in zip(wanted, made, strict=True)]


async def _milestones(eng: httpx.AsyncClient, estate: KpiEstate) -> dict[int, Any]:
    """facmon's on-site and resolved time of every work order of both estates."""
    found = {}
    for site in (estate.site_a, estate.site_b):
        for wo in (await eng.get("/work-orders", params={"site": site, "limit": 500})).json()["items"]:
            found[wo["id"]] = tuple(None if wo[k] is None else when(wo[k]) for k in ("on_site_at", "resolved_at"))
    return found


def _compare(
    estate: KpiEstate, asked: list[Any], reports: list[Any], milestones: dict[int, Any]
) -> tuple[list[str], dict[str, Recomputed]]:
    problems: list[str] = []
    done: dict[str, Recomputed] = {}
    for label, site, start, end, answer in asked:
        period = Period(start, end, when(answer["generated_at"]))
        mine = done[label] = recompute(_records(estate, site), period)
        problems += differences(label, mine, from_api(answer))
        problems += cancellation_differences(label, mine.cancellations, answer.get("cancellations"))
    for label, site, month, report in reports:
        start, end = month_bounds(month, site_zone(site))
        if (when(report["period_start"]), when(report["period_end"])) != (start, end):
            problems.append(f"{label}: period {report['period_start']} - {report['period_end']} != {start} - {end}")
        mine = done[label] = recompute(_records(estate, site), Period(start, end, when(report["generated_at"])))
        problems += differences(label, mine, from_report(report))
        problems += cancellation_differences(label, mine.cancellations, report.get("cancellations"))
    # The raw records of an estate are the same for each of its figures: each contradiction is told once.
    told: set[str] = set()
    for label, mine in done.items():
        fresh = [what for what in mine.inconsistencies if what not in told]
        told.update(fresh)
        problems += [f"{label}: raw records: {what}" for what in fresh]
    for label in ("api whole run, estate A", "api around 00:00, estate B"):
        problems += milestone_differences(label, done[label], milestones)
    return problems, done


def _as_scripted(script: Script, mine: Recomputed) -> None:
    """The run did what the script meant (timing on a busy machine could have let a card read find a work order it was
    not meant for): each work order's contract and statutory clocks as tests/system/kpi_script.py's table says."""
    expected = {
        "W1": {"on_site": "met", "repair": "met"},
        "W2": {"on_site": "missed", "repair": "met"},
        "W3": {"on_site": "missed", "statutory_on_site": "met", "repair": "met"},
        "W4": {"acknowledge": None, "on_site": None, "statutory_on_site": None, "repair": None},
        "W5": {"on_site": "met", "repair": "met"},
        "W6": {"on_site": "missed", "repair": None},
        "W7": {"on_site": "missed", "repair": "missed"},
        "W8": {"on_site": "missed", "repair": "missed"},
        "WF": {"on_site": "missed", "repair": "missed"},
    }
    got = {
        label: {clock: mine.outcomes[script.work_orders[label]][clock] for clock in clocks}
        for label, clocks in expected.items()
    }
    assert got == expected, f"the run did not go as scripted: {got}"
    # W5's technician is on site by the replayed card read, stamped with the deadline itself (nothing earlier).
    replayed = next(a for a in script.log if a.what == "replayed" and a.detail["type"] == "card_read")
    assert mine.milestones[script.work_orders["W5"]][0] == when(replayed.detail["ts"]), mine.milestones
    # Every card read of the script's log is on record as its estate's gateway stamped it (within 15 s of being
    # sent), those that must change nothing included, so that their having changed nothing is shown.
    estate = script.estate
    for action in (a for a in script.log if a.what == "card_read"):
        site, card, sent = action.detail["site"], action.detail["card"], action.at
        late = sent + timedelta(seconds=15)
        query = (
            f"SELECT card FROM events WHERE site = '{site}' AND type = 'card_read' AND card = '{card}'"
            f" AND time >= '{sent:%Y-%m-%dT%H:%M:%S.%fZ}' AND time <= '{late:%Y-%m-%dT%H:%M:%S.%fZ}'"
        )
        assert influxql(estate.influxd.url, estate.influx_db, query), f"no card read of {card} at {site} after {sent}"


def test_the_recomputation_imports_nothing_of_facmon() -> None:
    """Only the standard library, httpx and the recomputation's own modules."""
    for module in RECOMPUTATION:
        tree = ast.parse(Path(module.__file__ or "").read_text())
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                top = name.split(".")[0]
                assert name in ALLOWED_IMPORTS or top in sys.stdlib_module_names, f"{module.__name__} imports {name}"


# The scripted period is 100 s of real time (tests/system/kpi_script.py), after eight processes start.
@pytest.mark.timeout(420)
async def test_every_kpi_recomputed_from_raw_records_equals_the_api_and_the_report(
    mosquitto: Mosquitto, influxd: Influxd, influx_db: str, tmp_path: Path, topic_prefix: str
) -> None:
    async with KpiEstate(tmp_path, topic_prefix, mosquitto, influxd, influx_db) as estate:
        base = f"http://127.0.0.1:{estate.api_port}/api/v1"
        admin = await signed_in(base, "ops")
        await add_users(admin)
        people = {name: await signed_in(base, name) for name in ("eng", "li", "zhao", "wang")}
        try:
            await _readings_of_every_device(estate)
            began = datetime.now(UTC)
            async with aiomqtt.Client("127.0.0.1", mosquitto.port) as mqtt:
                script = Script(estate, mqtt, people, fire_point=_intact_point(estate))
                try:
                    await script.run()
                finally:
                    script.save(tmp_path / "actions.json")
            asked = await _api_periods(estate, people["eng"], script, began)
            reports = await _reports(estate)
            milestones = await _milestones(people["eng"], estate)
        finally:
            for client in (admin, *people.values()):
                await client.aclose()
        problems, done = await asyncio.to_thread(_compare, estate, asked, reports, milestones)
        await asyncio.to_thread(estate.keep_records)
        (tmp_path / "recomputed.json").write_text(json.dumps({k: asdict(v) for k, v in done.items()}, default=str))
        _as_scripted(script, done["api whole run, estate A"])
        assert not problems, "\n".join(problems) + f"\n(records in {tmp_path})"
