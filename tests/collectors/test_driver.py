"""The register-map codec: what the simulator encodes, the collector decodes; illegal values are refused."""

from __future__ import annotations

from typing import Any, Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collectors.modbus.driver import ModbusDriver
from collectors.modbus.registers import Block, Point, RegType
from collectors.registry import MODBUS_DRIVERS, modbus_driver
from facmon.kernel.model import Value


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
    # The block reads the identity registers too (one request a poll): floors_served must be a legal one.
    good = {"service_mode": "normal", "floor": 3, "door": "open", "load_pct": 10, "floors_served": 30}
    words = _registers(driver, block, good)
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


def test_elevator_driver_reads_in_one_request() -> None:
    # The live values, the counters (0..25) and the identity block (100..101) in one request, the reserved
    # registers between them read through: a poll is one round trip.
    assert _spans(modbus_driver("elev-gb-a")) == [("holding", 0, 102)]


# -- bit fields, fault words, status events, entrapment: the rest of the driver format -----------------------------


def _packed(**extra: Any) -> ModbusDriver:
    return ModbusDriver.model_validate(
        {
            "model": "packed",
            "kind": "elevator",
            "enums": {"door": {0: "closed", 1: "opening", 2: "open", 3: "closing"}},
            "points": [
                {"name": "moving", "address": 0, "bit": 0, "type": "bool"},
                {"name": "door", "address": 0, "bit": 4, "bits": 3, "type": "uint16", "enum": "door"},
                {"name": "level", "address": 0, "bit": 7, "bits": 4, "type": "uint16", "max": 9},
                {"name": "alarm", "address": 0, "bit": 15, "type": "bool"},
                {"name": "word", "address": 1, "type": "uint16"},
            ],
            **extra,
        }
    )


def test_bit_fields_share_a_register_and_decode_apart() -> None:
    driver = _packed()
    (block,) = driver.blocks
    assert (block.start, block.count) == (0, 2)
    word = 1 << 15 | 3 << 7 | 2 << 4 | 1  # alarm, level 3, door open (2), moving
    values, problems = driver.decode_block(block, [word | 0b1110, 7])  # bits 1-3 belong to no point
    assert problems == []
    assert values == {"moving": True, "door": "open", "level": 3, "alarm": True, "word": 7}


def test_writing_a_bit_field_keeps_the_rest_of_its_word() -> None:
    driver = _packed()
    image: dict[int, int] = {0: 0b1110}  # bits no point owns stay as they are too
    driver.write(image, "moving", True)
    driver.write(image, "door", "closing")
    driver.write(image, "level", 9)
    driver.write(image, "alarm", True)
    assert image[0] == 1 << 15 | 9 << 7 | 3 << 4 | 1 | 0b1110
    driver.write(image, "door", "closed")
    driver.write(image, "moving", False)
    assert image[0] == 1 << 15 | 9 << 7 | 0b1110
    assert driver.to_registers("door", "open") == [2 << 4]
    with pytest.raises(ValueError, match="does not fit 3 bit"):
        driver.to_registers("door", 8)
    with pytest.raises(ValueError, match="does not fit 4 bit"):
        driver.write(image, "level", 16)


def test_an_illegal_bit_field_is_refused_and_its_neighbours_kept() -> None:
    driver = _packed()
    (block,) = driver.blocks
    values, problems = driver.decode_block(block, [10 << 7 | 5 << 4 | 1, 0])  # level 10 > 9, door code 5
    assert values == {"moving": True, "alarm": False, "word": 0}
    assert problems == [
        "door (holding 0): raw value 5 is not a code of door",
        "level (holding 0): raw value 10 outside 0..9",
    ]


@pytest.mark.parametrize(
    ("point", "message"),
    [
        ({"name": "x", "address": 0, "bit": 6, "type": "bool"}, "x overlaps door at holding 0"),
        ({"name": "x", "address": 0, "type": "uint16"}, "x overlaps moving at holding 0"),
        ({"name": "x", "address": 1, "bit": 0, "type": "bool"}, "x overlaps word at holding 1"),
        ({"name": "x", "address": 0, "bit": 0, "bits": 2, "type": "bool"}, "one bit wide"),
        ({"name": "x", "address": 0, "bit": 14, "bits": 3, "type": "uint16"}, "do not fit a register"),
        ({"name": "x", "address": 0, "bit": 1, "type": "int16"}, "bool or uint16"),
        ({"name": "x", "address": 0, "bits": 2, "type": "uint16"}, "`bits` needs `bit`"),
    ],
)
def test_bit_fields_must_fit_and_not_overlap(point: dict[str, Any], message: str) -> None:
    base = _packed()
    with pytest.raises(ValueError, match=message):
        ModbusDriver.model_validate(
            {**base.model_dump(exclude={"points"}), "points": [*base.model_dump()["points"], point]}
        )


def test_distinct_bits_of_one_register_do_not_overlap() -> None:
    base = _packed()
    free = {"name": "spare", "address": 0, "bit": 1, "bits": 3, "type": "uint16"}
    driver = ModbusDriver.model_validate(
        {**base.model_dump(exclude={"points"}), "points": [*base.model_dump()["points"], free]}
    )
    assert driver.by_name["spare"].mask == 0b1110


def test_impossible_raw_values_for_garbage() -> None:
    driver = _packed()
    assert driver.impossible_raw("door") == 4
    assert driver.impossible_raw("level") == 10
    assert driver.impossible_raw("moving") is None  # one bit: both values are legal
    assert driver.impossible_raw("word") is None
    gb_a = modbus_driver("elev-gb-a")
    assert gb_a.impossible_raw("moving") == 2  # a whole register for a bool
    assert gb_a.impossible_raw("floor") == 100
    assert gb_a.impossible_raw("service_mode") == 8
    assert gb_a.impossible_raw("trips") is None


def test_every_elev_st_b_point_round_trips_through_one_request() -> None:
    driver = modbus_driver("elev-st-b")
    assert _spans(driver) == [("input", 0, 22)]
    values: dict[Value, Any] = {
        "moving": True,
        "direction": "down",
        "door": "closing",
        "door_zone": False,
        "passenger": True,
        "power_source": "backup",
        "service_mode": "fire_return",
        "e_code": 31,
        "fault_bits": 0b1001,
        "floor": -3,
        "load_pct": 73,
        "speed": 1.234,
        "trips": 0x12345678,
        "run_hours": 12345.67,
        "door_cycles": 70000,
        "firmware": 305,
        "floors_served": 18,
    }
    assert set(values) == set(driver.by_name), "the test covers every point of the driver"
    image: dict[int, int] = {}
    for name, value in values.items():
        driver.write(image, str(name), value)
    # Little-endian word order: the low word first.
    assert [image[8], image[9]] == [0x5678, 0x1234]
    # Backup power (bit 12), passenger (9), door closing (3 at bit 4), down (2 at bit 1), moving (0).
    assert image[0] == 1 << 12 | 1 << 9 | 3 << 4 | 2 << 1 | 1
    (block,) = driver.blocks
    decoded, problems = driver.decode_block(block, [image.get(a, 0) for a in range(22)])
    assert problems == []
    assert decoded == {
        **values,
        "speed": pytest.approx(1.234),
        "run_hours": pytest.approx(12345.67),
    }


def test_vendor_fault_codes_are_reported_as_gb_codes() -> None:
    driver = modbus_driver("elev-st-b")
    assert driver.fault_code(31) == ("2", "door close fault (E31)")
    assert driver.fault_code(99) == ("E99", "unknown fault code E99")
    assert modbus_driver("elev-gb-a").fault_code(2) == ("2", "door close fault")


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"faults": {"code_point": "nope", "codes": {1: "a"}}}, "unknown point 'nope'"),
        ({"faults": {"code_point": "door", "codes": {1: "a"}}}, "a plain number"),
        ({"faults": {"bits": [{"point": "moving", "codes": {0: 1}}], "codes": {1: "a"}}}, "whole uint16"),
        ({"faults": {"bits": [{"point": "word", "codes": {16: 1}}], "codes": {1: "a"}}}, "not 0..15"),
        ({"faults": {"bits": [{"point": "word", "codes": {0: 2}}], "codes": {1: "a"}}}, r"GB codes \[2\]"),
        ({"faults": {"code_point": "word", "code_map": {31: 2}, "codes": {1: "a"}}}, r"GB codes \[2\]"),
        ({"faults": {"flags": {"word": "x"}, "codes": {}}}, "a bool point"),
        (
            {"status_events": {"texts": {41: "x"}, "points": {"door": {"codes": {"ajar": 41}}}}},
            "'ajar' is not a value",
        ),
        ({"status_events": {"texts": {41: "x"}, "points": {"moving": {"codes": {1: 41}}}}}, "1 is not a value"),
        ({"status_events": {"texts": {41: "x"}, "points": {"moving": {"codes": {True: 42}}}}}, "no text"),
        ({"entrapment": {"door_open": "wide"}}, "unknown point 'passenger'"),
    ],
)
def test_event_sections_are_checked_against_the_points(section: dict[str, Any], message: str) -> None:
    base = _packed()
    with pytest.raises(ValueError, match=message):
        ModbusDriver.model_validate({**base.model_dump(exclude_none=True), **section})


def test_entrapment_needs_the_door_labels() -> None:
    driver = modbus_driver("elev-st-b")
    with pytest.raises(ValueError, match="no labels 'closed' and 'shut'"):
        ModbusDriver.model_validate({**driver.model_dump(exclude_none=True), "entrapment": {"door_open": "shut"}})


def _value_type(driver: ModbusDriver, point: Point) -> type:
    if point.type is RegType.BOOL:
        return bool
    if point.enum is not None:
        return str
    return float if point.scale != 1.0 else int


def test_points_named_alike_have_one_type_across_models_of_a_kind() -> None:
    # Readings of one kind share a measurement, and InfluxDB fixes a field's type on first write: a float load_pct
    # from one model would have every reading of the other refused.
    seen: dict[tuple[str, str], tuple[type, str]] = {}
    for model in MODBUS_DRIVERS:
        driver = modbus_driver(model)
        for point in driver.points:
            kind = _value_type(driver, point)
            first = seen.setdefault((driver.kind, point.name), (kind, model))
            assert first[0] is kind, f"{point.name}: {kind.__name__} in {model}, {first[0].__name__} in {first[1]}"


def test_a_block_decodes_alike_whether_the_drivers_own_or_an_equal_one_made_anew() -> None:
    # Plans are found by the block's identity first; an equal block made elsewhere finds the same plan by value, and
    # blocks made anew poll after poll are remembered by identity only up to a bound.
    driver = modbus_driver("elev-gb-a")
    own = driver.blocks[0]
    registers = [0] * own.count
    registers[1] = 7  # somewhere in the block: whatever it decodes to, both ways agree
    expected = driver.decode_block(own, registers)
    for _ in range(200):
        fresh = Block(own.table, own.start, own.count, tuple(own.points))
        assert driver.decode_block(fresh, registers) == expected
    assert driver.decode_block(own, registers) == expected
    assert len(driver._plans_by_id) <= 64
