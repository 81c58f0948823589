"""Bad register frames between good ones, through a real pymodbus server and the real poller.

Hypothesis draws good frames (every point a legal raw value) and, after each, a bad frame: the same words with one
to three points given values no legal reading can have (enum codes missing from their table, numbers outside their
range, 2 in a bool register, 3 in a 2-bit field whose codes stop at 2). The test writes the words itself, with its
own encoding, so the driver's decoding is checked against something it did not produce. Every good value must arrive
as it was meant; every bad one must be left out, counted and dead-lettered once, without costing its neighbours
their values and without raising any event. Polls are driven directly (no timers), so 1,000 bad frames per model
take seconds.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collectors.modbus.driver import ModbusDriver
from collectors.modbus.registers import Point, RegType, Table
from collectors.registry import modbus_driver
from facmon.kernel.model import Value
from tests.collectors.support import polled_frames

MODELS = ["elev-gb-a", "elev-st-b"]
EXAMPLES = 20
PAIRS_PER_EXAMPLE = 50  # 20 x 50 = 1,000 bad frames per model


def _legal(driver: ModbusDriver, p: Point) -> tuple[int, int]:
    lo, hi = p.limits
    return (p.min if p.min is not None else lo), (p.max if p.max is not None else hi)


def _good_raw(driver: ModbusDriver, p: Point) -> st.SearchStrategy[int]:
    lo, hi = _legal(driver, p)
    if p.enum is not None:
        return st.sampled_from(sorted(code for code in driver.enums[p.enum] if lo <= code <= hi))
    return st.integers(lo, hi)


def _bad_raw(driver: ModbusDriver, p: Point) -> st.SearchStrategy[int] | None:
    """Raw values the point's registers can hold and the collector must refuse; None when there are none."""
    lo, hi = p.span
    legal_lo, legal_hi = _legal(driver, p)
    table = driver.enums[p.enum] if p.enum is not None else None
    if hi - lo < 256:
        bad = [r for r in range(lo, hi + 1) if not legal_lo <= r <= legal_hi or (table is not None and r not in table)]
        return st.sampled_from(bad) if bad else None
    parts = []
    if legal_hi < hi:
        parts.append(st.integers(legal_hi + 1, hi))
    if legal_lo > lo:
        parts.append(st.integers(lo, legal_lo - 1))
    if table is not None:
        # Codes inside the range that the table lacks: the gaps among its codes, and everything above the last.
        top = min(max(table), legal_hi)
        gaps = [r for r in range(legal_lo, top + 1) if r not in table]
        parts += [st.sampled_from(gaps)] if gaps else []
        parts += [st.integers(top + 1, legal_hi)] if top < legal_hi else []
    return st.one_of(parts) if parts else None


def _meaning(driver: ModbusDriver, p: Point, raw: int) -> Value:
    """What a legal raw value means, written out here rather than taken from the driver."""
    if p.type is RegType.BOOL:
        return raw == 1
    if p.enum is not None:
        return driver.enums[p.enum][raw]
    return raw * p.scale if p.scale != 1.0 else raw


def _place(driver: ModbusDriver, words: dict[Table, dict[int, int]], p: Point, raw: int) -> None:
    """Put a raw value into the register words, as the device would."""
    table = words[p.table]
    if p.bit is not None:
        mask = ((1 << p.bits) - 1) << p.bit
        table[p.address] = (table[p.address] & ~mask) | (raw << p.bit)
        return
    unsigned = raw & ((1 << (16 * p.width)) - 1)
    if p.width == 1:
        table[p.address] = unsigned
    else:
        hi, lo = unsigned >> 16, unsigned & 0xFFFF
        table[p.address], table[p.address + 1] = (hi, lo) if driver.word_order == "big" else (lo, hi)


def _frame(driver: ModbusDriver, raws: dict[str, int]) -> dict[Table, dict[int, int]]:
    words: dict[Table, dict[int, int]] = {
        table: {a: 0 for b in driver.blocks if b.table == table for a in range(b.start, b.start + b.count)}
        for table in ("holding", "input")
    }
    for name, raw in raws.items():
        _place(driver, words, driver.by_name[name], raw)
    return words


def _close(got: dict[str, Value], want: dict[str, Value]) -> bool:
    return got.keys() == want.keys() and all(
        got[k] == pytest.approx(v, abs=1e-9) if isinstance(v, float) else got[k] == v and type(got[k]) is type(v)
        for k, v in want.items()
    )


@pytest.mark.parametrize("model", MODELS)
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
async def test_bad_frames_are_refused_counted_and_parked_and_good_ones_arrive(model: str, data: Any) -> None:
    driver = modbus_driver(model)
    good = {p.name: _good_raw(driver, p) for p in driver.points}
    bad = {p.name: strategy for p in driver.points if (strategy := _bad_raw(driver, p)) is not None}
    async with polled_frames(driver, device=model) as polled:
        for _ in range(PAIRS_PER_EXAMPLE):
            raws = {name: data.draw(strategy, label=name) for name, strategy in good.items()}
            meant = {name: _meaning(driver, driver.by_name[name], raw) for name, raw in raws.items()}
            for table, words in _frame(driver, raws).items():
                polled.source.set(table, words)
            letters, counted = len(polled.letters), polled.metrics.get("modbus_rejected_values")
            await polled.poll()
            assert _close(polled.readings[-1].values, meant), f"good frame {raws}"
            assert len(polled.letters) == letters
            assert polled.metrics.get("modbus_rejected_values") == counted

            # The same frame with impossible values in some points.
            spoiled = data.draw(st.lists(st.sampled_from(sorted(bad)), min_size=1, max_size=3, unique=True))
            broken = {**raws, **{name: data.draw(bad[name], label=f"bad {name}") for name in spoiled}}
            broken_words = _frame(driver, broken)
            for table, words in broken_words.items():
                polled.source.set(table, words)
            events = len(polled.events)
            await polled.poll()
            kept = {name: value for name, value in meant.items() if name not in spoiled}
            assert _close(polled.readings[-1].values, kept), f"bad frame {broken}, spoiled {spoiled}"
            for name in spoiled:
                assert polled.metrics.get("modbus_rejected_values", device=model, point=name) >= 1
            assert polled.metrics.get("modbus_rejected_values") == counted + len(spoiled)
            parked = polled.letters[letters:]
            assert sorted(letter.reason.split(" ")[0] for letter in parked) == sorted(spoiled)
            for letter in parked:
                point = driver.by_name[letter.reason.split(" ")[0]]
                assert letter.reason.startswith(f"{point.name} ({point.table} {point.address}): raw value ")
                assert (letter.source, letter.site) == ("modbus", "s")
                assert letter.ref is not None
                assert letter.ref.device == model
                # The whole block as it was read, so the bad frame can be looked at later.
                block = next(b for b in driver.blocks if point in b.points)
                served = broken_words[block.table]
                sent = " ".join(str(served[a]) for a in range(block.start, block.start + block.count))
                assert letter.payload == f"{block.table} {block.start}+{block.count}: {sent}"
            # A refused value changes nothing: no fault, status or entrapment edge comes of it.
            assert polled.events[events:] == []
