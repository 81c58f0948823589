"""Site files with MQTT devices: gates and cameras need no Modbus address, take a vendor id and a vendor broker, and
every mistake is reported naming the file, the line, the entry and the problem (also by `facmon check-config`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from collectors.registry import mqtt_driver
from facmon.estate.site import SiteFileError, load_site
from facmon.shell.cli import app
from gateway.mqtt_devices import grace_s, site_devices


def _write(tmp_path: Path, devices: list[dict[str, Any]], **top: Any) -> Path:
    raw = {"site": {"id": "estate"}, "buildings": [{"id": "b1", "devices": devices}], **top}
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


GATE = {"id": "gate-north", "kind": "gate", "model": "barrier-a", "vendor_id": "G01"}
CAMERA = {"id": "cam-1", "kind": "camera", "model": "camera-a"}
LIFT = {"id": "e1", "kind": "elevator", "model": "elev-gb-a", "address": {"host": "127.0.0.1", "port": 1502}}


def test_gates_and_cameras_need_no_address(tmp_path: Path) -> None:
    site = load_site(_write(tmp_path, [GATE, CAMERA, LIFT]))
    assert site.mqtt is None
    assert site.device("gate-north").mqtt_id == "G01"
    assert site.device("cam-1").mqtt_id == "cam-1", "the vendor id defaults to the device id"
    devices = {d.ref.device: d for d in site_devices(site)}
    assert sorted(devices) == ["cam-1", "gate-north"], "elevators are not MQTT devices"
    assert devices["gate-north"].vendor_id == "G01"


def test_the_grace_defaults_to_three_heartbeats(tmp_path: Path) -> None:
    site = load_site(_write(tmp_path, [GATE, {**CAMERA, "comm_grace_s": 120}]))
    assert grace_s(site.device("gate-north"), mqtt_driver("barrier-a")) == 30.0
    assert grace_s(site.device("cam-1"), mqtt_driver("camera-a")) == 120.0


def test_a_vendor_broker(tmp_path: Path) -> None:
    site = load_site(_write(tmp_path, [GATE], mqtt={"host": "10.0.0.5", "topic_prefix": "estate-7/in"}))
    assert site.mqtt is not None
    assert (site.mqtt.host, site.mqtt.port, site.mqtt.topic_prefix) == ("10.0.0.5", 1883, "estate-7/in")


# The files are written by yaml.safe_dump (keys sorted), so each problem's line is known.
@pytest.mark.parametrize(
    ("devices", "top", "line", "problem"),
    [
        (
            [{**GATE, "address": {"host": "10.0.0.9"}}],
            {},
            3,
            "buildings[0].devices[0] (gate-north): address: a gate publishes over MQTT and takes no Modbus address",
        ),
        (
            [{**LIFT, "vendor_id": "L1"}],
            {},
            9,
            "buildings[0].devices[0] (e1): vendor_id: only for devices that publish over MQTT (gate, camera)",
        ),
        (
            [{**GATE, "vendor_id": "G/01"}],
            {},
            6,
            "buildings[0].devices[0] (gate-north): vendor_id: String should match",
        ),
        (
            [{**GATE, "model": "barrier-z"}],
            {},
            5,
            "buildings[0].devices[0] (gate-north): model: no MQTT driver for model 'barrier-z'; "
            "known: ['barrier-a', 'camera-a']",
        ),
        (
            [{**CAMERA, "model": "barrier-a"}],
            {},
            5,
            "buildings[0].devices[0] (cam-1): model: barrier-a is a gate driver, not a camera",
        ),
        (
            [{**GATE, "comm_grace_s": 10}],
            {},
            3,
            "buildings[0].devices[0] (gate-north): comm_grace_s: 10 s is not longer than the 10 s heartbeat of "
            "barrier-a: the device would be reported lost between heartbeats",
        ),
        (
            [GATE, {**GATE, "id": "gate-south"}],
            {},
            10,
            "buildings[0].devices[1] (gate-south): vendor_id: vendor id 'G01' is already gate-north's "
            "(vendor/barrier/{vendor_id}/{message})",
        ),
        ([GATE], {"mqtt": {"host": "h", "topic_prefix": "a/+/b"}}, 10, "mqtt: topic_prefix: String should match"),
        ([GATE], {"mqtt": {"host": "h", "port": 0}}, 10, "mqtt: port: Input should be greater than or equal to 1"),
    ],
)
def test_mistakes_name_the_file_the_line_the_entry_and_the_problem(
    tmp_path: Path, devices: list[dict[str, Any]], top: dict[str, Any], line: int, problem: str
) -> None:
    path = _write(tmp_path, devices, **top)
    with pytest.raises(SiteFileError) as caught:
        load_site(path)
    [reported] = caught.value.problems
    assert reported.startswith(f"{path}:{line}: {problem}"), reported


def test_the_same_vendor_id_on_another_vendors_topics_is_fine(tmp_path: Path) -> None:
    load_site(_write(tmp_path, [GATE, {**CAMERA, "vendor_id": "G01"}]))


def test_check_config_reports_every_problem(tmp_path: Path) -> None:
    path = _write(tmp_path, [{**GATE, "model": "barrier-z"}, {**CAMERA, "model": "barrier-a"}])
    result = CliRunner().invoke(app, ["check-config", str(path)])
    assert result.exit_code == 2
    assert "2 problem(s) in the site file" in result.output
    assert (
        f"{path}:5: buildings[0].devices[0] (gate-north): model: no MQTT driver for model 'barrier-z'" in result.output
    )
    assert (
        f"{path}:9: buildings[0].devices[1] (cam-1): model: barrier-a is a gate driver, not a camera" in result.output
    )
    ok = CliRunner().invoke(app, ["check-config", str(_write(tmp_path, [GATE, CAMERA]))])
    assert ok.exit_code == 0
    assert "2 device(s)" in ok.output
