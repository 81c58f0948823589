"""The reports over HTTP (GET /api/v1/reports/insurance and /kpi): formats, who may read them, and bad requests as
problems naming the field. A real SQLite file seeded through the rules store (tests.reports.support)."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine

from api import create_app
from api.accounts.models import Role
from api.deps import get_clock
from facmon.kernel.clock import FakeClock
from facmon.kernel.db import make_engine
from tests.api.accounts import bearer
from tests.databases import Databases
from tests.reports.support import NOW, SITE, seed

PROBLEM = "application/problem+json"
INSURANCE = {"site": "maple", "as_of": "2026-10-31"}
KPI = {"site": "maple", "month": "2026-10"}


@pytest.fixture(scope="module")
def engine(module_databases: Databases) -> Iterator[Engine]:
    """One database for the module: reports only read it."""
    engine = make_engine(module_databases.url())
    seed(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def reporter(engine: Engine) -> dict[str, str]:
    return bearer(engine, Role.REPORTER, username="insurer")


@pytest.fixture
def app(engine: Engine) -> FastAPI:
    app = create_app(sites=[SITE], engine=engine)  # no InfluxDB: the KPIs that need it say so
    app.dependency_overrides[get_clock] = lambda: FakeClock(NOW)
    return app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://facmon.test/api/v1/reports") as client:
        yield client


async def test_insurance_report_in_every_format(client: httpx.AsyncClient, reporter: dict[str, str]) -> None:
    answer = await client.get("/insurance", params=INSURANCE, headers=reporter)
    assert (answer.status_code, answer.headers["content-type"]) == (200, "application/json")
    assert answer.headers["content-disposition"] == 'inline; filename="insurance-maple-2026-10-31.json"'
    body = answer.json()
    assert (body["site"], body["as_of"]) == ("maple", "2026-10-31")
    assert [(e["device"], e["insurance_status"]) for e in body["elevators"]] == [
        ("old2", "uninsured"),
        ("edge", "expired"),
        ("old1", "insured"),
    ]
    table = await client.get("/insurance", params=INSURANCE | {"format": "csv"}, headers=reporter)
    assert (table.status_code, table.headers["content-type"]) == (200, "text/csv; charset=utf-8")
    assert [r["device"] for r in csv.DictReader(io.StringIO(table.text))] == ["old2", "edge", "old1"]
    pdf = await client.get("/insurance", params=INSURANCE | {"format": "pdf"}, headers=reporter)
    assert (pdf.status_code, pdf.headers["content-type"]) == (200, "application/pdf")
    assert pdf.content.startswith(b"%PDF")
    # The threshold chooses the elevators.
    older = await client.get("/insurance", params=INSURANCE | {"threshold_years": 15}, headers=reporter)
    assert [e["device"] for e in older.json()["elevators"]] == ["old1"]


async def test_kpi_report_in_every_format(client: httpx.AsyncClient, reporter: dict[str, str]) -> None:
    answer = await client.get("/kpi", params=KPI, headers=reporter)
    assert (answer.status_code, answer.headers["content-type"]) == (200, "application/json")
    body = answer.json()
    assert (body["site"], body["month"]) == ("maple", "2026-10")
    assert {k["key"]: k["verdict"] for k in body["kpis"]}["fire_intact_rate"] == "unavailable"
    table = await client.get("/kpi", params=KPI | {"format": "csv"}, headers=reporter)
    assert (table.status_code, table.headers["content-type"]) == (200, "text/csv; charset=utf-8")
    assert table.text.strip()
    pdf = await client.get("/kpi", params=KPI | {"format": "pdf"}, headers=reporter)
    assert (pdf.status_code, pdf.headers["content-type"]) == (200, "application/pdf")
    assert pdf.content.startswith(b"%PDF")


async def test_reports_are_for_managers_and_insurers_not_technicians(client: httpx.AsyncClient, engine: Engine) -> None:
    for role in (Role.ADMIN, Role.ENGINEER, Role.VIEWER):
        headers = bearer(engine, role)
        assert (await client.get("/insurance", params=INSURANCE, headers=headers)).status_code == 200, role
        assert (await client.get("/kpi", params=KPI, headers=headers)).status_code == 200, role
    technician = bearer(engine, Role.TECHNICIAN, technician="li-ming")
    for path, params in (("/insurance", INSURANCE), ("/kpi", KPI)):
        response = await client.get(path, params=params, headers=technician)
        assert (response.status_code, response.headers["content-type"]) == (403, PROBLEM), path
    for path, params in (("/insurance", INSURANCE), ("/kpi", KPI)):
        response = await client.get(path, params=params)
        assert (response.status_code, response.headers["content-type"]) == (401, PROBLEM), path


async def test_an_unknown_site_is_404(client: httpx.AsyncClient, reporter: dict[str, str]) -> None:
    for path, params in (("/insurance", INSURANCE), ("/kpi", KPI)):
        response = await client.get(path, params=params | {"site": "nowhere"}, headers=reporter)
        assert (response.status_code, response.headers["content-type"]) == (404, PROBLEM), path
        assert response.json()["detail"] == "no site 'nowhere'"


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/insurance", INSURANCE | {"as_of": "2026-13-01"}, "query.as_of"),
        ("/insurance", INSURANCE | {"as_of": "yesterday"}, "query.as_of"),
        ("/insurance", INSURANCE | {"as_of": "0001-01-01"}, "query.as_of"),
        ("/insurance", INSURANCE | {"as_of": "9999-12-31"}, "query.as_of"),
        ("/insurance", INSURANCE | {"format": "xml"}, "query.format"),
        ("/insurance", INSURANCE | {"threshold_years": -1}, "query.threshold_years"),
        ("/kpi", KPI | {"month": "2026-13"}, "query.month"),
        ("/kpi", KPI | {"month": "October"}, "query.month"),
        ("/kpi", KPI | {"month": "0001-01"}, "query.month"),
        ("/kpi", KPI | {"format": "docx"}, "query.format"),
        ("/kpi", {"month": "2026-10"}, "query.site"),
    ],
)
async def test_bad_parameters_are_422_naming_the_field(
    client: httpx.AsyncClient, reporter: dict[str, str], path: str, params: dict[str, object], field: str
) -> None:
    response = await client.get(path, params=params, headers=reporter)
    assert (response.status_code, response.headers["content-type"]) == (422, PROBLEM), response.text
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert response.json()["detail"].startswith(f"{field}: ")


async def test_reports_are_read_only(client: httpx.AsyncClient, reporter: dict[str, str], engine: Engine) -> None:
    for headers in (reporter, bearer(engine, Role.ADMIN)):
        for path in ("/insurance", "/kpi"):
            response = await client.post(path, params=INSURANCE | KPI, headers=headers, json={})
            assert (response.status_code, response.headers["content-type"]) == (405, PROBLEM), path


async def test_without_a_period_the_reports_take_today_and_the_last_complete_month(
    client: httpx.AsyncClient, reporter: dict[str, str]
) -> None:
    """What a manager asks for most: this month's report is due on the first, about the month just ended."""
    local_now = NOW.astimezone(SITE.tz)
    last_month = (local_now.date().replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    kpi = await client.get("/kpi", params={"site": "maple"}, headers=reporter)
    assert kpi.status_code == 200, kpi.text
    assert kpi.json()["month"] == last_month
    insurance = await client.get("/insurance", params={"site": "maple"}, headers=reporter)
    assert insurance.status_code == 200, insurance.text
    assert insurance.json()["as_of"] == local_now.date().isoformat()


async def test_kpis_without_a_period_are_the_last_complete_month_in_site_time(
    app: FastAPI, reporter: dict[str, str]
) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://facmon.test/api/v1") as client:
        answer = await client.get("/kpis", params={"site": "maple"}, headers=reporter)
        assert answer.status_code == 200, answer.text
        start = datetime.fromisoformat(answer.json()["from"]).astimezone(SITE.tz)
        end = datetime.fromisoformat(answer.json()["to"]).astimezone(SITE.tz)
        assert (start.day, start.hour, end.day, end.hour) == (1, 0, 1, 0)
        assert end.date() == NOW.astimezone(SITE.tz).date().replace(day=1)
        half = await client.get(
            "/kpis", params={"site": "maple", "from": "2026-10-01T00:00:00+08:00"}, headers=reporter
        )
        assert half.status_code == 422
        assert [e["field"] for e in half.json()["errors"]] == ["query.to"]
