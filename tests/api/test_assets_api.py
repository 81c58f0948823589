"""Elevator asset data through the API: the site file as the baseline, changes stored and laid over it field by
field, checked with the site file's rules, audited, and used by the insurance report (the API's and the CLI's).

A real SQLite file at the newest schema, seeded with the insurance report's year of work orders (tests.reports.support:
"Maple Court"; old2 has no policy, so it is uninsured on the as-of day 2026-10-31).
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi import FastAPI
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from api import create_app
from api.accounts.models import AuditEntry, Role
from api.auth import ENGINEERING, OPERATIONS, REPORTING, policy
from api.deps import get_clock
from api.routes import assets
from facmon.estate.asset_store import DeviceAssets
from facmon.estate.site import Site
from facmon.kernel.clock import FakeClock
from facmon.kernel.db import make_engine
from facmon.shell.cli import app as cli_app
from tests.api.accounts import bearer
from tests.databases import Databases
from tests.reports.support import NOW, SITE, seed

PROBLEM = "application/problem+json"
AS_OF = "2026-10-31"
POLICY = {"insurer": "金陵财产保险", "policy": "P-2", "expires": "2027-10-31"}


def _site(site: Site, *, site_id: str | None = None, technician: str = "li-ming", **old1: Any) -> Site:
    """`site` with a fire panel and a technician added (and old1's fields replaced by `old1`)."""
    raw = site.model_dump(mode="json", exclude_none=True)
    if site_id is not None:
        raw["site"]["id"] = site_id
    devices = raw["buildings"][0]["devices"]
    devices[0] |= old1
    devices.append({"id": "fp1", "kind": "fire_panel", "model": "fire-gb-a", "address": {"host": "127.0.0.1"}})
    raw["technicians"] = [
        {"id": technician, "name": technician.title(), "phone": "+86 138 0000 0000", "disciplines": ["elevator"]}
    ]
    return Site.model_validate(raw)


MAPLE = _site(SITE)
ELSEWHERE = _site(SITE, site_id="elsewhere", technician="zhao-lei")


@pytest.fixture(scope="module")
def seeded_url(module_databases: Databases) -> str:
    """The seeded database, made once; each test works on a copy."""
    url = module_databases.url()
    engine = make_engine(url)
    seed(engine)
    engine.dispose()  # the last connection closing checkpoints SQLite's WAL into the file; PostgreSQL copies no
    return url  # database while a connection to it is open


@pytest.fixture
def engine(seeded_url: str, databases: Databases) -> Iterator[Engine]:
    engine = make_engine(databases.copy_of(seeded_url))
    yield engine
    engine.dispose()


def build_app(engine: Engine, sites: list[Site]) -> FastAPI:
    app = create_app(sites=sites, engine=engine)
    if not any(getattr(r, "path", "").endswith("/assets") for r in app.routes):  # until api.app includes it
        app.include_router(
            assets.router, prefix="/api/v1", dependencies=[policy(read=OPERATIONS | REPORTING, write=ENGINEERING)]
        )
    app.dependency_overrides[get_clock] = lambda: FakeClock(NOW)
    return app


@pytest.fixture
def app(engine: Engine) -> FastAPI:
    return build_app(engine, [MAPLE, ELSEWHERE])


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://facmon.test/api/v1") as client:
        yield client


@pytest.fixture
def engineer(engine: Engine) -> dict[str, str]:
    return bearer(engine, Role.ENGINEER, username="ann")


async def insurance(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.get(
        "/reports/insurance", params={"site": "maple", "as_of": AS_OF, "format": "json"}, headers=headers
    )
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {e["device"]: e["insurance_status"] for e in report["elevators"]}


async def test_a_patch_is_laid_over_the_site_file_and_says_who_and_when(
    client: httpx.AsyncClient, engine: Engine, engineer: dict[str, str]
) -> None:
    before = await client.get("/devices/maple/old2/assets", headers=engineer)
    assert before.status_code == 200, before.text
    body = before.json()
    assert body["assets"]["insurance"] is None
    assert body["assets"]["registration_code"] == "31103201012014110002"
    assert {s["source"] for s in body["sources"].values()} == {"site_file"}
    assert (body["updated_by"], body["updated_at"], body["conflict"]) == (None, None, None)

    changed = await client.patch(
        "/devices/maple/old2/assets",
        json={"insurance": POLICY, "certificate": "梯11苏A00002(14)"},
        headers=engineer,
    )
    assert changed.status_code == 200, changed.text
    after = changed.json()
    assert after["assets"]["insurance"] == POLICY
    assert after["assets"]["certificate"] == "梯11苏A00002(14)"
    stamp = NOW.isoformat().replace("+00:00", "Z")
    assert after["sources"]["insurance"] == {"source": "api", "updated_by": "ann", "updated_at": stamp}
    assert after["sources"]["certificate"]["source"] == "api"
    # The rest is the site file's, untouched.
    assert after["assets"]["usage"] == "residential"
    assert after["assets"]["inspection"] == {"last": "2025-09-20", "valid_until": "2026-09-30"}
    assert after["sources"]["usage"] == {"source": "site_file", "updated_by": None, "updated_at": None}
    assert (after["updated_by"], after["updated_at"]) == ("ann", stamp)
    assert (await client.get("/devices/maple/old2/assets", headers=engineer)).json() == after

    # Everyone who reads the device register reads it; technicians at their own sites only.
    for headers in (
        bearer(engine, Role.VIEWER),
        bearer(engine, Role.REPORTER),
        bearer(engine, Role.ADMIN),
        bearer(engine, Role.TECHNICIAN, technician="li-ming"),
    ):
        read = await client.get("/devices/maple/old2/assets", headers=headers)
        assert (read.status_code, read.json()["assets"]["insurance"]) == (200, POLICY)
    stranger = await client.get(
        "/devices/maple/old2/assets", headers=bearer(engine, Role.TECHNICIAN, technician="zhao-lei")
    )
    assert (stranger.status_code, stranger.headers["content-type"]) == (403, PROBLEM)


async def test_a_partial_patch_keeps_the_other_fields_and_their_sources(
    client: httpx.AsyncClient, engine: Engine, engineer: dict[str, str]
) -> None:
    first = await client.patch("/devices/maple/old1/assets", json={"usage": "office"}, headers=engineer)
    assert first.status_code == 200, first.text
    admin = bearer(engine, Role.ADMIN, username="boss")
    inspection = {"last": "2026-10-01", "valid_until": "2027-10-31"}
    second = await client.patch("/devices/maple/old1/assets", json={"inspection": inspection}, headers=admin)
    assert second.status_code == 200, second.text
    body = second.json()
    assert (body["assets"]["usage"], body["assets"]["inspection"]) == ("office", inspection)
    assert body["sources"]["usage"]["updated_by"] == "ann"
    assert body["sources"]["inspection"]["updated_by"] == "boss"
    assert body["updated_by"] == "boss"
    # Site-file fields nobody sent stay as the file has them.
    assert body["assets"]["maintainer"]["company"] == "南京华信电梯工程有限公司"
    assert body["assets"]["insurance"]["policy"] == "P-1"
    assert body["sources"]["maintainer"]["source"] == "site_file"
    # Installation date and registration code are asset data too, checked like the rest.
    moved = await client.patch(
        "/devices/maple/old1/assets",
        json={"installed_on": "2010-04-01", "registration_code": "31103201012010040009"},
        headers=engineer,
    )
    assert moved.status_code == 200, moved.text
    assert (moved.json()["assets"]["installed_on"], moved.json()["variety_code"]) == ("2010-04-01", "3110")
    # An empty PATCH changes nothing and records nothing.
    unchanged = await client.patch("/devices/maple/old1/assets", json={}, headers=engineer)
    assert unchanged.json() == moved.json()
    with Session(engine) as session:
        assert len(session.scalars(select(AuditEntry).where(AuditEntry.action == "device.assets")).all()) == 3


async def test_null_clears_a_field_so_the_elevator_is_uninsured(
    client: httpx.AsyncClient, engine: Engine, engineer: dict[str, str]
) -> None:
    reporter = bearer(engine, Role.REPORTER)
    assert statuses(await insurance(client, reporter))["old1"] == "insured"
    cleared = await client.patch("/devices/maple/old1/assets", json={"insurance": None}, headers=engineer)
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["assets"]["insurance"] is None
    assert cleared.json()["sources"]["insurance"]["source"] == "api"
    assert cleared.json()["assets"]["certificate"] == "梯11苏A00001(10)", "only the field sent"
    report = await insurance(client, reporter)
    assert statuses(report)["old1"] == "uninsured"
    assert any(n.startswith("old1: asset data updated through the API: insurance (ann, ") for n in report["notes"])


async def test_a_policy_added_through_the_api_insures_the_elevator_in_the_next_report(
    client: httpx.AsyncClient, engine: Engine, engineer: dict[str, str]
) -> None:
    reporter = bearer(engine, Role.REPORTER)
    report = await insurance(client, reporter)
    assert statuses(report) == {"old2": "uninsured", "edge": "expired", "old1": "insured"}
    assert report["summary"]["uninsured"] == 2
    added = await client.patch("/devices/maple/old2/assets", json={"insurance": POLICY}, headers=engineer)
    assert added.status_code == 200, added.text
    report = await insurance(client, reporter)
    assert statuses(report) == {"edge": "expired", "old1": "insured", "old2": "insured"}
    assert report["summary"]["uninsured"] == 1
    old2 = next(e for e in report["elevators"] if e["device"] == "old2")
    assert (old2["insurer"], old2["policy"], old2["policy_expires"]) == (POLICY["insurer"], "P-2", "2027-10-31")


@pytest.mark.parametrize(
    ("device", "body", "field"),
    [
        # The variety must agree with the registration code's first four digits, whichever of them is sent.
        ("old1", {"variety": "3210"}, "body.variety"),
        ("old1", {"registration_code": "32103201012010030001"}, "body.registration_code"),
        ("old1", {"variety": "9999"}, "body.variety"),
        ("old1", {"registration_code": "3110"}, "body.registration_code"),
        ("old1", {"inspection": {"last": "2026-10-01", "valid_until": "2026-09-01"}}, "body.inspection"),
        (
            "old1",
            {"maintainer": {"company": "X", "contract": {"number": "C", "start": "2026-02-01", "end": "2026-01-01"}}},
            "body.maintainer.contract",
        ),
        ("old1", {"major_repair": {"done_on": "2009-01-01"}}, "body.major_repair.done_on"),
        ("old1", {"installed_on": "2023-01-01"}, "body.installed_on"),  # after the major repair of 2022
        ("old2", {"installed_on": "2027-01-01"}, "body.installed_on"),  # in the future
        ("old2", {"inspection": {"last": "2026-12-01", "valid_until": "2027-12-01"}}, "body.inspection.last"),
        ("old2", {"insurance": {"insurer": "X", "policy": "P", "expires": "0200-01-01"}}, "body.insurance.expires"),
        ("old2", {"insurance": {"insurer": "X", "policy": "P"}}, "body.insurance.expires"),
        ("old2", {"colour": "red"}, "body.colour"),
        ("old2", {"usage": "castle"}, "body.usage"),
        ("fp1", {"usage": "office"}, "path.device"),  # elevators only
    ],
)
async def test_bad_asset_data_is_refused_naming_the_field(
    client: httpx.AsyncClient, engine: Engine, engineer: dict[str, str], device: str, body: Any, field: str
) -> None:
    response = await client.patch(f"/devices/maple/{device}/assets", json=body, headers=engineer)
    assert (response.status_code, response.headers["content-type"]) == (422, PROBLEM), response.text
    assert [e["field"] for e in response.json()["errors"]] == [field]
    with Session(engine) as session:
        assert session.scalars(select(DeviceAssets)).all() == []
        assert session.scalars(select(AuditEntry).where(AuditEntry.action == "device.assets")).all() == []


async def test_unknown_sites_and_devices_are_404(client: httpx.AsyncClient, engineer: dict[str, str]) -> None:
    for path in ("/devices/maple/nope/assets", "/devices/nowhere/old1/assets"):
        for method in ("GET", "PATCH"):
            response = await client.request(method, path, json={"usage": "office"}, headers=engineer)
            assert (response.status_code, response.headers["content-type"]) == (404, PROBLEM), (method, path)


async def test_only_admins_and_engineers_change_asset_data(
    client: httpx.AsyncClient, engine: Engine, engineer: dict[str, str]
) -> None:
    for headers in (
        bearer(engine, Role.VIEWER),
        bearer(engine, Role.REPORTER),
        bearer(engine, Role.TECHNICIAN, technician="li-ming"),
    ):
        response = await client.patch("/devices/maple/old2/assets", json={"insurance": POLICY}, headers=headers)
        assert (response.status_code, response.headers["content-type"]) == (403, PROBLEM), response.text
    assert (await client.get("/devices/maple/old2/assets", headers=engineer)).json()["assets"]["insurance"] is None


async def test_each_change_is_audited_with_before_and_after(
    client: httpx.AsyncClient, engine: Engine, engineer: dict[str, str]
) -> None:
    response = await client.patch("/devices/maple/old2/assets", json={"insurance": POLICY}, headers=engineer)
    assert response.status_code == 200
    with Session(engine) as session:
        [entry] = session.scalars(select(AuditEntry).where(AuditEntry.action == "device.assets")).all()
        assert (entry.actor, entry.role, entry.target_type, entry.target_id, entry.at) == (
            "ann",
            "engineer",
            "device",
            "maple/old2",
            NOW,
        )
        assert entry.before is not None
        assert entry.after is not None
        assert (entry.before["insurance"], entry.after["insurance"]) == (None, POLICY)
        assert entry.before["usage"] == entry.after["usage"] == "residential"


async def test_updates_that_no_longer_fit_an_edited_site_file_are_set_aside(
    engine: Engine, engineer: dict[str, str]
) -> None:
    async def patch_and_get(app: FastAPI, body: dict[str, Any] | None) -> dict[str, Any]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://facmon.test/api/v1") as client:
            if body is not None:
                assert (await client.patch("/devices/maple/old1/assets", json=body, headers=engineer)).is_success
            answer: dict[str, Any] = (await client.get("/devices/maple/old1/assets", headers=engineer)).json()
            return answer

    await patch_and_get(build_app(engine, [MAPLE]), {"usage": "office", "variety": "3110"})
    # Later the site file says old1 is a hydraulic lift: the stored variety 3110 contradicts it.
    edited = _site(SITE, registration_code="32103201012010030001", variety="3210")
    answer = await patch_and_get(build_app(engine, [edited]), None)
    assert "variety" in (answer["conflict"] or "")
    assert (answer["assets"]["variety"], answer["assets"]["usage"]) == ("3210", "residential")
    assert {s["source"] for s in answer["sources"].values()} == {"site_file"}
    # A new change starts over from the site file.
    fixed = await patch_and_get(build_app(engine, [edited]), {"usage": "mall"})
    assert (fixed["conflict"], fixed["assets"]["usage"], fixed["assets"]["variety"]) == (None, "mall", "3210")


async def test_the_cli_report_uses_the_updates_too(
    client: httpx.AsyncClient,
    engine: Engine,
    engineer: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert (await client.patch("/devices/maple/old2/assets", json={"insurance": POLICY}, headers=engineer)).is_success
    site_file = tmp_path / "site.yaml"
    site_file.write_text(yaml.safe_dump(MAPLE.model_dump(mode="json", exclude_none=True), allow_unicode=True), "utf-8")
    monkeypatch.setenv("FACMON_DB_URL", str(engine.url))
    monkeypatch.delenv("FACMON_INFLUX_URL", raising=False)
    result = CliRunner().invoke(
        cli_app, ["report", "insurance", "--site", str(site_file), "--as-of", AS_OF, "--format", "csv"]
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert {r["device"]: r["insurance_status"] for r in rows} == {
        "edge": "expired",
        "old1": "insured",
        "old2": "insured",
    }


async def test_the_device_list_and_detail_show_the_changed_installation_and_registration(
    client: httpx.AsyncClient, engineer: dict[str, str]
) -> None:
    changed = await client.patch(
        "/devices/maple/old2/assets",
        json={"installed_on": "2014-12-01", "registration_code": "31103201012014120099"},
        headers=engineer,
    )
    assert changed.status_code == 200, changed.text
    listed = {
        d["id"]: d for d in (await client.get("/devices", params={"site": "maple"}, headers=engineer)).json()["items"]
    }
    assert (listed["old2"]["installed_on"], listed["old2"]["registration_code"]) == (
        "2014-12-01",
        "31103201012014120099",
    )
    # The others keep the site file's.
    assert (listed["old1"]["installed_on"], listed["old1"]["registration_code"]) == (
        "2010-03-15",
        "31103201012010030001",
    )
    detail = (await client.get("/devices/maple/old2", headers=engineer)).json()
    assert (detail["installed_on"], detail["registration_code"]) == ("2014-12-01", "31103201012014120099")
    # The same device at another site is not changed by it.
    other = (await client.get("/devices/elsewhere/old2", headers=engineer)).json()
    assert (other["installed_on"], other["registration_code"]) == ("2014-11-01", "31103201012014110002")
