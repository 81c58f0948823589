"""The dashboards and Grafana provisioning files, checked without any service: valid JSON, unique uids and panel
ids, only the provisioned datasource, the site and building variables in every query, $timeFilter everywhere."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.grafana.expand import DATASOURCE_UID, PROVISIONING, load_dashboards, panels

DASHBOARDS = load_dashboards()
DATASOURCE = {"type": "influxdb", "uid": DATASOURCE_UID}
# Site-wide figures (the rules worker's fire_intact has no building tag) are filtered by site only.
SITE_ONLY = re.compile(r'FROM "fire_intact"')


def _datasource_refs(node: Any) -> list[Any]:
    if isinstance(node, dict):
        found = [node["datasource"]] if "datasource" in node else []
        return found + [ref for value in node.values() for ref in _datasource_refs(value)]
    if isinstance(node, list):
        return [ref for item in node for ref in _datasource_refs(item)]
    return []


def test_the_five_dashboards_exist() -> None:
    assert set(DASHBOARDS) == {"site-overview", "elevators", "fire-systems", "access-cameras", "work-orders"}


def test_uids_and_panel_ids_are_unique() -> None:
    uids = [board["uid"] for board in DASHBOARDS.values()]
    assert len(set(uids)) == len(uids)
    assert all(re.fullmatch(r"[a-z0-9-]{1,40}", uid) for uid in uids)
    for name, board in DASHBOARDS.items():
        ids = [panel["id"] for panel in panels(board)]
        assert len(set(ids)) == len(ids), name
        assert 39 <= board["schemaVersion"] < 42, name


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_datasource_is_the_provisioned_one(name: str) -> None:
    refs = _datasource_refs(DASHBOARDS[name])
    assert refs, "panels name their datasource"
    assert all(ref == DATASOURCE for ref in refs), [ref for ref in refs if ref != DATASOURCE]


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_variables_site_and_building(name: str) -> None:
    variables = {v["name"]: v for v in DASHBOARDS[name]["templating"]["list"]}
    assert set(variables) >= {"site", "building"}
    for var in (variables["site"], variables["building"]):
        assert var["type"] == "query"
        assert var["multi"]
        assert var["includeAll"]
        assert var["query"].startswith("SHOW TAG VALUES")
    assert '"site" =~ /^$site$/' in variables["building"]["query"], "buildings of the chosen sites"


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_query_is_raw_influxql_filtered_by_time_site_and_building(name: str) -> None:
    for panel in panels(DASHBOARDS[name]):
        assert panel.get("description"), f"{panel['title']}: say what the panel shows"
        for target in panel.get("targets", []):
            where = f"{panel['title']} {target['refId']}"
            query = target["query"]
            assert target["rawQuery"] is True, where
            assert "$timeFilter" in query, where
            assert '"site" =~ /^$site$/' in query, where
            if not SITE_ONLY.search(query):
                assert '"building" =~ /^$building$/' in query, where
            if "GROUP BY time(" in query:
                assert "GROUP BY time($__interval)" in query, f"{where}: let Grafana choose the interval"
                assert panel["type"] in {"timeseries", "barchart"}, where
            assert target.get("resultFormat") in {"time_series", "table"}, where


def test_datasource_provisioning_reads_facmon_settings() -> None:
    (source,) = yaml.safe_load((PROVISIONING / "datasources" / "facmon.yaml").read_text())["datasources"]
    assert source["uid"] == DATASOURCE_UID
    assert source["type"] == "influxdb"
    assert source["url"] == "${FACMON_INFLUX_URL}"
    assert source["user"] == "${FACMON_INFLUX_USERNAME}"
    assert source["jsonData"]["dbName"] == "${FACMON_INFLUX_DB}"
    assert source["secureJsonData"]["password"] == "${FACMON_INFLUX_PASSWORD}"


def test_dashboard_provider_points_at_the_dashboards() -> None:
    (provider,) = yaml.safe_load((PROVISIONING / "dashboards" / "facmon.yaml").read_text())["providers"]
    assert provider["type"] == "file"
    assert provider["folder"] == "facmon"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards/facmon"
