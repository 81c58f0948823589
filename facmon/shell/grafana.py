"""Push facmon's Grafana datasource and dashboards to a running Grafana over its HTTP API (`facmon grafana publish`).

Idempotent: the datasource is looked up by its uid and updated, or created when missing; the folder "facmon" is
created when missing; every dashboard is saved into it with `overwrite`, under its own uid. Running it twice
leaves Grafana as the first run did. The same datasource and dashboards are what Grafana's file provisioning
(grafana/provisioning/) loads; publish is for a Grafana that is already running elsewhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grafana_client.api import GrafanaApi
from grafana_client.client import GrafanaClientError

DATASOURCE_UID = "facmon-influxdb"
DATASOURCE_NAME = "facmon-influxdb"
FOLDER_UID = "facmon"
FOLDER_TITLE = "facmon"


@dataclass(frozen=True)
class InfluxSource:
    url: str
    db: str
    username: str | None = None
    password: str | None = None


@dataclass
class Published:
    datasource: str = ""  # "created" or "updated"
    folder: str = ""  # "created" or "exists"
    dashboards: list[str] = field(default_factory=list)  # uids


def datasource_body(source: InfluxSource) -> dict[str, Any]:
    """The datasource as grafana/provisioning/datasources/facmon.yaml declares it."""
    body: dict[str, Any] = {
        "name": DATASOURCE_NAME,
        "uid": DATASOURCE_UID,
        "type": "influxdb",
        "access": "proxy",
        "url": source.url,
        "user": source.username or "",
        "isDefault": True,
        "jsonData": {"dbName": source.db, "httpMode": "POST", "timeInterval": "10s"},
    }
    if source.password:
        body["secureJsonData"] = {"password": source.password}
    return body


def load_dashboards(folder: Path) -> list[dict[str, Any]]:
    files = sorted(folder.glob("*.json"))
    if not files:
        raise FileNotFoundError(f"no dashboard JSON files in {folder}")
    return [json.loads(path.read_text(encoding="utf-8")) for path in files]


def _missing(exc: GrafanaClientError) -> bool:
    return bool(exc.status_code == 404)


def publish(grafana: GrafanaApi, source: InfluxSource, dashboards: list[dict[str, Any]]) -> Published:
    api: Any = grafana  # grafana-client's methods are untyped
    done = Published()
    body = datasource_body(source)
    try:
        api.datasource.get_datasource_by_uid(DATASOURCE_UID)
    except GrafanaClientError as exc:
        if not _missing(exc):
            raise
        api.datasource.create_datasource(body)
        done.datasource = "created"
    else:
        api.datasource.update_datasource_by_uid(DATASOURCE_UID, body)
        done.datasource = "updated"

    try:
        api.folder.get_folder(FOLDER_UID)
        done.folder = "exists"
    except GrafanaClientError as exc:
        if not _missing(exc):
            raise
        api.folder.create_folder(FOLDER_TITLE, uid=FOLDER_UID)
        done.folder = "created"

    for dashboard in dashboards:
        # Grafana assigns ids; a dashboard saved by uid with overwrite replaces the one of the same uid.
        board = {k: v for k, v in dashboard.items() if k not in ("id", "version")}
        api.dashboard.update_dashboard({"dashboard": board, "folderUid": FOLDER_UID, "overwrite": True})
        done.dashboards.append(str(board["uid"]))
    return done


def publish_to(
    url: str, token: str | None, source: InfluxSource, dashboards: list[dict[str, Any]], *, timeout_s: float = 10.0
) -> Published:
    """`publish` to the Grafana at `url` (e.g. http://localhost:3000), with a service account token or, without
    one, the user and password in the URL (http://admin:admin@localhost:3000)."""
    api: Any = GrafanaApi.from_url(url, credential=token, timeout=timeout_s)
    try:
        return publish(api, source, dashboards)
    finally:
        api.client.s.close()
