"""The fire panel driver format: the point table's words decoded flag by flag, classified by type, or refused."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from collectors.modbus.driver import DriverError
from collectors.modbus.fire_panel import FirePanelDriver, Flag, PointError, load_fire_panel_driver
from collectors.registry import FIRE_PANEL_DRIVERS, fire_panel_driver
from facmon.estate.site import Site
from facmon.estate.site_checks import check_models

DRIVER = fire_panel_driver("fire-gb-a")
RAW: dict[str, Any] = yaml.safe_load(FIRE_PANEL_DRIVERS["fire-gb-a"].read_text(encoding="utf-8"))


def _type_with(flag: Flag) -> int:
    """A type that reports `flag` as itself (a fire bit that is a fire, not a supervisory signal)."""
    return next(c for c, t in DRIVER.point_types.items() if flag in t.flags and (flag != "fire" or t.fire_is == "fire"))


def test_the_whole_panel_is_read_in_six_requests() -> None:
    blocks = DRIVER.blocks
    assert [(b.start, b.count) for b in blocks] == [(0, 125), (125, 125), (250, 106), (400, 125), (525, 125), (650, 6)]
    read = {(b.table, b.start + i) for b in blocks for i in range(b.count)}
    table = DRIVER.point_table
    for point in table.ids():
        assert ("holding", table.status_address(point)) in read
        assert ("holding", table.type_address(point)) in read
    assert {("holding", p.address) for p in DRIVER.panel} <= read


@pytest.mark.parametrize(
    ("point", "status", "type_"), [("1-001", 100, 400), ("1-023", 122, 422), ("2-005", 232, 532), ("2-128", 355, 655)]
)
def test_point_names_and_addresses(point: str, status: int, type_: int) -> None:
    assert (DRIVER.point_table.status_address(point), DRIVER.point_table.type_address(point)) == (status, type_)


@pytest.mark.parametrize("point", ["3-001", "1-129", "1-000", "1-23", "x", "1023"])
def test_points_outside_the_table_are_unknown(point: str) -> None:
    with pytest.raises(KeyError):
        DRIVER.point_table.status_address(point)


@pytest.mark.parametrize("flag", list(Flag))
def test_every_flag_decodes_from_its_bit(flag: Flag) -> None:
    bit = DRIVER.point_table.bits[flag]
    status = DRIVER.decode_point("1-023", 1 << bit, _type_with(flag))
    assert status is not None
    assert status.flags == {flag}
    values = status.values()
    assert values[flag.value] is True
    assert [
        name for name in ("fire", "supervisory", "fault", "disabled", "active", "feedback", "delay") if values[name]
    ] == [flag.value]
    expected_state = flag.value if flag.value in ("fire", "supervisory", "fault", "disabled") else "active"
    assert values["state"] == expected_state
    assert status.intact is (flag not in (Flag.FAULT, Flag.DISABLED))


def test_a_normal_point_and_the_not_present_value() -> None:
    normal = DRIVER.decode_point("1-001", 0x0000, 1)
    assert normal is not None
    assert normal.values() == {
        "state": "normal",
        "type": "smoke_detector",
        **dict.fromkeys(("fire", "supervisory", "fault", "disabled", "active", "feedback", "delay"), False),
    }
    # No device: whatever the type register holds, even a code that does not exist.
    assert DRIVER.point_table.not_present == 0xFFFF
    assert DRIVER.decode_point("1-001", 0xFFFF, 1) is None
    assert DRIVER.decode_point("1-001", 0xFFFF, 999) is None


@pytest.mark.parametrize("name", ["water_flow_indicator", "signal_valve", "alarm_valve", "pressure_switch"])
def test_the_fire_bit_of_water_and_valve_devices_is_supervisory(name: str) -> None:
    code, kind = DRIVER.by_type_name[name]
    assert kind.fire_is == "supervisory"
    status = DRIVER.decode_point("1-023", 1 << DRIVER.point_table.bits[Flag.FIRE], code)
    assert status is not None
    assert (status.fire, status.supervisory, status.state, status.intact) == (False, True, "supervisory", True)


def test_detectors_and_call_points_raise_fire() -> None:
    for name in ("smoke_detector", "heat_detector", "manual_call_point", "hydrant_button"):
        status = DRIVER.decode_point("1-001", 0x0001, DRIVER.by_type_name[name][0])
        assert status is not None
        assert (status.fire, status.supervisory, status.state) == (True, False, "fire")


@pytest.mark.parametrize(
    ("status", "type_code", "reason"),
    [
        (0x0100, 1, "point 1-023: undefined status bits 0x0100 set (status 0x0100)"),
        (0x8001, 1, "point 1-023: undefined status bits 0x8000 set (status 0x8001)"),
        (0x0000, 0, "point 1-023: unknown point type code 0"),
        (0x0000, 77, "point 1-023: unknown point type code 77"),
        (0x0010, 1, "point 1-023: a photoelectric smoke detector cannot report active (status 0x0010)"),
        (0x0009, 20, "point 1-023: a fire pump cannot report fire, supervisory (status 0x0009)"),
        (0x0005, 1, "point 1-023: disabled and fire together (status 0x0005)"),
        (0x000C, 10, "point 1-023: disabled and supervisory together (status 0x000C)"),
    ],
)
def test_impossible_words_are_refused_naming_the_point(status: int, type_code: int, reason: str) -> None:
    with pytest.raises(PointError) as caught:
        DRIVER.decode_point("1-023", status, type_code)
    assert str(caught.value) == reason


@given(code=st.sampled_from(sorted(DRIVER.point_types)), data=st.data())
def test_what_the_simulator_encodes_the_collector_decodes(code: int, data: st.DataObject) -> None:
    kind = DRIVER.point_types[code]
    flags = data.draw(st.frozensets(st.sampled_from(sorted(kind.flags))))
    if Flag.DISABLED in flags:
        flags -= {Flag.FIRE, Flag.SUPERVISORY}
    status = DRIVER.decode_point("2-100", DRIVER.status_word(flags), code)
    assert status is not None
    assert (status.flags, status.type) == (flags, kind)


def test_a_frame_with_bad_values_still_gives_the_good_ones() -> None:
    image = DRIVER.empty_image()
    table = DRIVER.point_table
    for point, status, code in [("1-001", 0x0001, 1), ("1-002", 0x0400, 1), ("1-003", 0x0000, 42)]:
        image[("holding", table.status_address(point))] = status
        image[("holding", table.type_address(point))] = code
    image[("holding", 7)] = 999  # fault_count above the 256 points
    frame = DRIVER.decode(image)
    assert [(r.where, r.point) for r in frame.rejected] == [("fault_count", False), ("1-002", True), ("1-003", True)]
    assert "fault_count" not in frame.panel
    assert frame.panel["main_power_fault"] is False
    first = frame.points["1-001"]
    assert first is not None
    assert first.state == "fire"
    assert "1-002" not in frame.points
    assert frame.points["1-004"] is None
    assert len(frame.points) == 256 - 2


def _invalid(change: dict[str, Any]) -> dict[str, Any]:
    raw = copy.deepcopy(RAW)
    for path, value in change.items():
        node = raw
        *parents, last = path.split(".")
        for key in parents:
            node = node[int(key) if key.isdigit() else key]
        node[int(last) if last.isdigit() else last] = value
    return raw


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"point_table.bits.delay": 0}, "distinct positions"),
        ({"point_table.bits.delay": 16}, "distinct positions"),
        ({"point_table.not_present": 0x007F}, "must set a bit no flag uses"),
        ({"point_table.type_base": 300}, "overlap"),
        ({"point_table.loop_stride": 100}, "shorter than a loop"),
        ({"panel.9.address": 150}, "overlaps the point table"),
        ({"panel_faults": {"resets": "resets"}}, "not a bool panel point"),
        ({"point_types.25.name": "smoke_detector"}, "used twice"),
        ({"point_table.exclusive": [["disabled", "melted"]]}, "exclusive"),
        ({"kind": "elevator"}, "kind"),
    ],
)
def test_driver_files_that_cannot_work_are_refused(change: dict[str, Any], message: str, tmp_path: Path) -> None:
    path = tmp_path / "driver.yaml"
    path.write_text(yaml.safe_dump(_invalid(change)), encoding="utf-8")
    with pytest.raises(DriverError, match=message):
        load_fire_panel_driver(path)


def test_a_type_needs_a_bit_for_each_of_its_flags() -> None:
    raw = copy.deepcopy(RAW)
    del raw["point_table"]["bits"]["delay"]
    with pytest.raises(ValueError, match="flags without a status bit"):
        FirePanelDriver.model_validate(raw)


def _site(kind: str, model: str) -> Site:
    device = {"id": "f1", "kind": kind, "model": model, "address": {"host": "127.0.0.1", "port": 1502}}
    return Site.model_validate({"site": {"id": "s"}, "buildings": [{"id": "b1", "devices": [device]}]})


def test_site_files_may_name_fire_panel_models_for_fire_panels_only() -> None:
    assert check_models(_site("fire_panel", "fire-gb-a").located_devices()) == []
    ((where, problem),) = check_models(_site("fire_panel", "elev-gb-a").located_devices())
    assert (where, problem) == (
        ("buildings", 0, "devices", 0, "model"),
        "no fire panel driver for model 'elev-gb-a'; known: ['fire-gb-a']",
    )
    ((_, problem),) = check_models(_site("elevator", "fire-gb-a").located_devices())
    assert problem.startswith("no Modbus driver for model 'fire-gb-a'")
