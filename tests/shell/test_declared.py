"""The fields the historian lets through are every field the collectors emit: each golden case of each driver."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from collectors.registry import FIRE_PANEL_DRIVERS, MODBUS_DRIVERS, MQTT_DRIVERS
from facmon.estate.entries import Device
from facmon.kernel.model import DeviceKind
from facmon.shell.declared import device_fields

KINDS = {"barrier-a": DeviceKind.GATE, "camera-a": DeviceKind.CAMERA}


def _cases(registry: dict[str, Path]) -> list[tuple[str, Path]]:
    return [(model, case) for model, path in registry.items() for case in sorted((path.parent / "testcases").glob("*"))]


def _device(model: str, kind: DeviceKind) -> Device:
    address = {"host": "127.0.0.1"} if kind in (DeviceKind.ELEVATOR, DeviceKind.FIRE_PANEL) else None
    return Device.model_validate({"id": "d", "kind": kind, "model": model, "address": address})


def _expected(case: Path) -> Any:
    return yaml.safe_load((case / "expected.yaml").read_text())


@pytest.mark.parametrize(("model", "case"), _cases(MODBUS_DRIVERS), ids=lambda v: getattr(v, "name", v))
def test_elevator_fields_are_declared(model: str, case: Path) -> None:
    declared = device_fields("b1", _device(model, DeviceKind.ELEVATOR))
    emitted = {name for frame in _expected(case)["frames"] for name in (frame.get("values") or {})}
    assert emitted, f"{case}: no reading to check"
    assert emitted <= declared.fields, f"{case}: undeclared {sorted(emitted - declared.fields)}"


@pytest.mark.parametrize(("model", "case"), _cases(FIRE_PANEL_DRIVERS), ids=lambda v: getattr(v, "name", v))
def test_fire_panel_fields_are_declared(model: str, case: Path) -> None:
    declared = device_fields("b1", _device(model, DeviceKind.FIRE_PANEL))
    frames = _expected(case)["frames"]
    panel = {name for frame in frames for name in (frame.get("panel") or {})}
    points = {name for frame in frames for values in (frame.get("points") or {}).values() for name in values}
    assert panel <= declared.fields, f"{case}: undeclared {sorted(panel - declared.fields)}"
    assert points <= declared.point_fields, f"{case}: undeclared {sorted(points - declared.point_fields)}"


@pytest.mark.parametrize(("model", "case"), _cases(MQTT_DRIVERS), ids=lambda v: getattr(v, "name", v))
def test_mqtt_device_fields_are_declared(model: str, case: Path) -> None:
    declared = device_fields("b1", _device(model, KINDS[model]))
    emitted = {name for step in _expected(case) if "reading" in step for name in step["reading"]["values"]}
    assert emitted <= declared.fields, f"{case}: undeclared {sorted(emitted - declared.fields)}"


def test_every_driver_has_cases() -> None:
    assert all(
        _cases({model: path}) for model, path in {**MODBUS_DRIVERS, **FIRE_PANEL_DRIVERS, **MQTT_DRIVERS}.items()
    )
