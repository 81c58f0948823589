"""Planned maintenance in the site file: validated against the site, and turned into UTC windows for the notifier."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from facmon.estate.site import SiteFileError, load_site
from facmon.notifier.storm import maintenance_windows, silenced_by


def _site(tmp_path: Path, maintenance: list[dict[str, Any]]) -> Path:
    raw = {
        "site": {"id": "s1", "timezone": "Asia/Shanghai"},
        "buildings": [
            {"id": "b1", "devices": [{"id": "cam1", "kind": "camera", "model": "camera-a"}]},
            {"id": "b2", "devices": [{"id": "cam2", "kind": "camera", "model": "camera-a"}]},
        ],
        "maintenance": maintenance,
    }
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_windows_are_site_local_times_in_utc(tmp_path: Path) -> None:
    site = load_site(
        _site(
            tmp_path,
            [
                {"from": "2026-12-01 09:00", "to": "2026-12-01 17:00", "building": "b2", "reason": "lift works"},
                {"from": "2026-12-03 22:00", "to": "2026-12-04 02:00", "device": "cam1", "reason": "cabling"},
            ],
        )
    )
    building, device = maintenance_windows(site)
    assert (building.start, building.end) == (
        datetime(2026, 12, 1, 1, tzinfo=UTC),
        datetime(2026, 12, 1, 9, tzinfo=UTC),
    )
    assert (building.building, building.device) == ("b2", None)
    # A device's window knows its building, so it matches the alerts of that device only.
    assert (device.building, device.device) == ("b1", "cam1")
    at = datetime(2026, 12, 1, 3, tzinfo=UTC)  # 11:00 site time
    assert silenced_by([building], site="s1", building="b2", device="cam2", routine=True, at=at) is building
    assert silenced_by([building], site="s1", building="b1", device="cam1", routine=True, at=at) is None
    assert silenced_by([building], site="s1", building="b2", device="cam2", routine=False, at=at) is None


# The files are written by yaml.safe_dump (keys sorted): the entry is on line 13, its fields follow in key order.
@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        (
            {"from": "2026-12-01 09:00", "to": "2026-12-01 08:00", "reason": "x"},
            "13: maintenance[0]: from 2026-12-01 09:00 must be before to 2026-12-01 08:00",
        ),
        (
            {"from": "2026-12-01 09:00", "to": "2026-12-01 10:00", "building": "b9", "reason": "x"},
            "13: maintenance[0]: building: unknown building 'b9'",
        ),
        (
            {"from": "2026-12-01 09:00", "to": "2026-12-01 10:00", "device": "nope", "reason": "x"},
            "13: maintenance[0]: device: unknown device 'nope'",
        ),
        (
            {"from": "2026-12-01 09:00", "to": "2026-12-01 10:00", "building": "b1", "device": "cam2", "reason": "x"},
            "14: maintenance[0]: device: device 'cam2' is not in building 'b1'",
        ),
        ({"from": "2026-12-01 09:00", "to": "2026-12-01 10:00"}, "13: maintenance[0]: reason: Field required"),
    ],
)
def test_bad_entries_name_file_line_and_reason(tmp_path: Path, entry: dict[str, Any], problem: str) -> None:
    path = _site(tmp_path, [entry])
    with pytest.raises(SiteFileError) as caught:
        load_site(path)
    assert caught.value.problems == [f"{path}:{problem}"]
