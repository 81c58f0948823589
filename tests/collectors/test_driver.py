"""The register-map codec: what the simulator encodes, the collector decodes; illegal values are refused."""

from __future__ import annotations

from typing import Any, Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collectors.modbus.driver import Block, ModbusDriver, Point
from collectors.registry import modbus_driver
from facmon.model import Value


def _driver(word_order: Literal["big", "little"] = "big", **extra: Any) -> ModbusDriver:
    return ModbusDriver.model_validate(
        {
            "model": "test-32",
            "kind": "elevator",
            "word_order": word_order,
            "enums": {"door": {0: "closed", 1: "open"}},
            "points": [
                {"name": "count", "address": 0, "type": "uint32"},
                {"name": "offset", "address": 2, "type": "int32"},
                {"name": "hours", "address": 4, "type": "uint32", "scale": 0.1},
                {"name": "temp", "address": 6, "type": "int16", "min": -40, "max": 120},
                {"name": "door", "address": 7, "type": "uint16", "enum": "door"},
                {"name": "on", "address": 8, "type": "bool"},
            ],
            **extra,
        }
    )


def _registers(driver: ModbusDriver, block: Block, values: dict[str, Value]) -> list[int]:
    """The words of one block with `values` encoded where their points live (zeros elsewhere)."""
    words = [0] * block.count
    for point in block.points:
        if point.name not in values:
            continue
        encoded = driver.to_registers(point.name, values[point.name])
        words[point.address - block.start : point.address - block.start + len(encoded)] = encoded
    return words


@pytest.mark.parametrize(
    ("word_order", "expected"),
    [("big", [0x1234, 0x5678]), ("little", [0x5678, 0x1234])],
)
def test_32_bit_word_order(word_order: Literal["big", "little"], expected: list[int]) -> None:
    driver = _driver(word_order)
    assert driver.to_registers("count", 0x12345678) == expected
    (block,) = driver.blocks
    values, problems = driver.decode_block(block, [*expected, *([0] * (block.count - 2))])
    assert problems == []
    assert values["count"] == 0x12345678


@given(
    word_order=st.sampled_from(["big", "little"]),
    count=st.integers(0, 0xFFFFFFFF),
    offset=st.integers(-0x80000000, 0x7FFFFFFF),
    hours_raw=st.integers(0, 0xFFFFFFFF),
    temp=st.integers(-40, 120),
    door=st.sampled_from(["closed", "open"]),
    on=st.booleans(),
)
def test_round_trip(
    word_order: Literal["big", "little"], count: int, offset: int, hours_raw: int, temp: int, door: str, on: bool
) -> None:
    driver = _driver(word_order)
    values: dict[str, Value] = {
        "count": count,
        "offset": offset,
        "hours": hours_raw * 0.1,
        "temp": temp,
        "door": door,
        "on": on,
    }
    (block,) = driver.blocks
    decoded, problems = driver.decode_block(block, _registers(driver, block, values))
    assert problems == []
    assert decoded == {**values, "hours": pytest.approx(hours_raw * 0.1)}
    assert all(0 <= word <= 0xFFFF for name in values for word in driver.to_registers(name, values[name]))


def test_negative_32_bit_is_twos_complement() -> None:
    driver = _driver("big")
    assert driver.to_registers("offset", -2) == [0xFFFF, 0xFFFE]
    assert _driver("little").to_registers("offset", -2) == [0xFFFE, 0xFFFF]


def test_every_elevator_point_round_trips() -> None:
    driver = modbus_driver("elev-gb-a")
    values: dict[str, Value] = {
        "service_mode": "inspection",
        "moving": True,
        "direction": "down",
        "floor": -2,
        "door": "closing",
        "door_zone": False,
        "passenger": True,
        "load_pct": 73,
        "speed": 1.75,
        "power_source": "backup",
        "fault_code": 12,
        "entrapment": True,
        "trips": 0x12345678,
        "run_hours": 12345.6,
        "door_cycles": 70000,
        "firmware": 213,
        "floors_served": 18,
    }
    assert set(values) == set(driver.by_name), "the test covers every point of the driver"
    decoded: dict[str, Value] = {}
    for block in driver.blocks:
        part, problems = driver.decode_block(block, _registers(driver, block, values))
        assert problems == []
        decoded.update(part)
    assert decoded == {**values, "speed": pytest.approx(1.75), "run_hours": pytest.approx(12345.6)}


@pytest.mark.parametrize(
    ("point", "raw", "reason"),
    [
        ("floor", 120, "outside -5..99"),
        ("floor", 0xFFF0, "outside -5..99"),  # -16 as int16
        ("load_pct", 151, "outside 0..150"),
        ("door", 7, "is not a code of door"),
        ("service_mode", 9, "is not a code of service_mode"),
        ("moving", 2, "outside 0..1"),
    ],
)
def test_illegal_values_are_rejected_and_the_rest_kept(point: str, raw: int, reason: str) -> None:
    driver = modbus_driver("elev-gb-a")
    block = driver.blocks[0]
    words = _registers(driver, block, {"service_mode": "normal", "floor": 3, "door": "open", "load_pct": 10})
    words[driver.by_name[point].address - block.start] = raw
    values, problems = driver.decode_block(block, words)
    assert point not in values
    assert len(problems) == 1
    assert problems[0].startswith(f"{point} (holding {driver.by_name[point].address})")
    assert reason in problems[0]
    assert len(values) == len(block.points) - 1


def test_a_short_answer_is_a_problem_not_a_crash() -> None:
    driver = modbus_driver("elev-gb-a")
    values, problems = driver.decode_block(driver.blocks[0], [0, 0, 0])
    assert values == {}
    assert "got 3 registers" in problems[0]


def _points(*specs: tuple[str, int, str]) -> list[Point]:
    return [
        Point.model_validate({"name": f"p{i}", "table": table, "address": address, "type": kind})
        for i, (table, address, kind) in enumerate(specs)
    ]


def _spans(driver: ModbusDriver) -> list[tuple[str, int, int]]:
    return [(b.table, b.start, b.count) for b in driver.blocks]


def _coalesced(points: list[Point], max_block: int, max_gap: int) -> ModbusDriver:
    return ModbusDriver.model_validate(
        {"model": "t", "kind": "elevator", "points": points, "max_block": max_block, "max_gap": max_gap}
    )


def test_coalescing_reads_through_gaps_up_to_max_gap() -> None:
    # p0 ends at 1; a neighbour 8 unused registers later shares the request, one 9 later does not.
    near = _points(("holding", 0, "uint16"), ("holding", 9, "uint16"))
    far = _points(("holding", 0, "uint16"), ("holding", 10, "uint16"))
    assert _spans(_coalesced(near, 100, 8)) == [("holding", 0, 10)]
    assert _spans(_coalesced(far, 100, 8)) == [("holding", 0, 1), ("holding", 10, 1)]


def test_coalescing_respects_max_block_including_32_bit_width() -> None:
    points = _points(("holding", 0, "uint16"), ("holding", 59, "uint32"))
    # Together they span 0..60: 61 registers.
    assert _spans(_coalesced(points, 61, 100)) == [("holding", 0, 61)]
    assert _spans(_coalesced(points, 60, 100)) == [("holding", 0, 1), ("holding", 59, 2)]


def test_coalescing_keeps_tables_apart_and_covers_every_point_once() -> None:
    points = _points(("input", 1, "uint16"), ("holding", 0, "uint32"), ("holding", 2, "uint16"), ("input", 0, "bool"))
    driver = _coalesced(points, 100, 10)
    assert _spans(driver) == [("holding", 0, 3), ("input", 0, 2)]
    covered = [p.name for b in driver.blocks for p in b.points]
    assert sorted(covered) == sorted(p.name for p in points)


def test_elevator_driver_reads_in_two_requests() -> None:
    # The live values and counters (0..25) in one request, the identity block far away in another.
    assert _spans(modbus_driver("elev-gb-a")) == [("holding", 0, 26), ("holding", 100, 2)]
