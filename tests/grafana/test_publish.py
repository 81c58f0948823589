"""`facmon grafana publish` against a small real HTTP server that answers the Grafana HTTP API endpoints
grafana-client calls (datasources by uid, folders, dashboards/db) and records every request: the datasource and
every dashboard arrive, and a second run changes nothing (same uids, no second folder or datasource)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from typer.testing import CliRunner

from facmon.shell.cli import app
from tests.grafana.expand import DASHBOARDS, load_dashboards
from tests.support import serving_in_thread

TOKEN = "glsa_test_token"


@dataclass
class FakeGrafana:
    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    unauthorized: int = 0

    def routes(self) -> list[Route]:
        async def record(request: Request) -> dict[str, Any] | None:
            self.requests.append((request.method, request.url.path))
            if request.headers.get("authorization") != f"Bearer {TOKEN}":
                self.unauthorized += 1
            body = await request.body()
            return json.loads(body) if body else None

        async def datasource(request: Request) -> JSONResponse:
            body = await record(request)
            uid = request.path_params["uid"]
            if request.method == "GET":
                if uid not in self.datasources:
                    return JSONResponse({"message": "Data source not found"}, 404)
                return JSONResponse(self.datasources[uid])
            assert body is not None
            if uid not in self.datasources:
                return JSONResponse({"message": "Data source not found"}, 404)
            self.datasources[uid] = body | {"id": self.datasources[uid]["id"]}
            return JSONResponse({"message": "Datasource updated", "datasource": self.datasources[uid]})

        async def create_datasource(request: Request) -> JSONResponse:
            body = await record(request)
            assert body is not None
            if body["uid"] in self.datasources or any(d["name"] == body["name"] for d in self.datasources.values()):
                return JSONResponse({"message": "data source with the same name already exists"}, 409)
            self.datasources[body["uid"]] = body | {"id": len(self.datasources) + 1}
            return JSONResponse({"message": "Datasource added", "datasource": self.datasources[body["uid"]]})

        async def folder(request: Request) -> JSONResponse:
            await record(request)
            uid = request.path_params["uid"]
            if uid not in self.folders:
                return JSONResponse({"message": "folder not found"}, 404)
            return JSONResponse(self.folders[uid])

        async def create_folder(request: Request) -> JSONResponse:
            body = await record(request)
            assert body is not None
            if body.get("uid") in self.folders:
                return JSONResponse({"message": "a folder with the same uid already exists"}, 409)
            self.folders[body["uid"]] = {"uid": body["uid"], "title": body["title"], "id": len(self.folders) + 1}
            return JSONResponse(self.folders[body["uid"]])

        async def save_dashboard(request: Request) -> JSONResponse:
            body = await record(request)
            assert body is not None
            board = body["dashboard"]
            if board["uid"] in self.dashboards and not body.get("overwrite"):
                return JSONResponse({"message": "version-mismatch"}, 412)
            if body.get("folderUid") not in self.folders:
                return JSONResponse({"message": "folder not found"}, 400)
            self.dashboards[board["uid"]] = body
            return JSONResponse({"status": "success", "uid": board["uid"], "version": 1})

        return [
            Route("/api/datasources/uid/{uid}", datasource, methods=["GET", "PUT"]),
            Route("/api/datasources", create_datasource, methods=["POST"]),
            Route("/api/folders/{uid}", folder, methods=["GET"]),
            Route("/api/folders", create_folder, methods=["POST"]),
            Route("/api/dashboards/db", save_dashboard, methods=["POST"]),
        ]


@pytest.fixture
def grafana() -> Iterator[tuple[FakeGrafana, str]]:
    fake = FakeGrafana()
    with serving_in_thread(Starlette(routes=fake.routes()), "fake-grafana") as url:
        yield fake, url


def test_publish_twice_is_idempotent(grafana: tuple[FakeGrafana, str], monkeypatch: pytest.MonkeyPatch) -> None:
    fake, url = grafana
    monkeypatch.setenv("FACMON_INFLUX_URL", "http://influxdb:8086")
    monkeypatch.setenv("FACMON_INFLUX_DB", "facmon")
    monkeypatch.setenv("FACMON_INFLUX_USERNAME", "grafana")
    monkeypatch.setenv("FACMON_INFLUX_PASSWORD", "s3cret")
    args = ["grafana", "publish", "--url", url, "--token", TOKEN, "--dashboards", str(DASHBOARDS)]

    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "datasource created, folder created, 5 dashboard(s) published" in first.output
    (source,) = fake.datasources.values()
    assert source["uid"] == "facmon-influxdb"
    assert source["type"] == "influxdb"
    assert source["url"] == "http://influxdb:8086"
    assert source["user"] == "grafana"
    assert source["jsonData"]["dbName"] == "facmon"
    assert source["secureJsonData"] == {"password": "s3cret"}
    assert list(fake.folders) == ["facmon"]
    expected = {board["uid"] for board in load_dashboards().values()}
    assert set(fake.dashboards) == expected
    assert all(d["folderUid"] == "facmon" and d["overwrite"] is True for d in fake.dashboards.values())
    assert all("id" not in d["dashboard"] for d in fake.dashboards.values()), "Grafana assigns ids"
    state = json.dumps([fake.datasources, fake.folders, fake.dashboards], sort_keys=True)

    second = CliRunner().invoke(app, args)
    assert second.exit_code == 0, second.output
    assert "datasource updated, folder exists, 5 dashboard(s) published" in second.output
    assert json.dumps([fake.datasources, fake.folders, fake.dashboards], sort_keys=True) == state
    creations = [r for r in fake.requests if r in {("POST", "/api/datasources"), ("POST", "/api/folders")}]
    assert len(creations) == 2, "one datasource and one folder, created once"
    assert fake.unauthorized == 0, "every request carries the token"


def test_publish_without_an_influx_url_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FACMON_INFLUX_URL", raising=False)
    result = CliRunner().invoke(app, ["grafana", "publish", "--url", "http://127.0.0.1:9", "--token", TOKEN])
    assert result.exit_code == 2
    assert "FACMON_INFLUX_URL" in result.output
