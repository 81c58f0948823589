"""The process's counters over prometheus_client: one registry per Counters, labels fixed per counter."""

from __future__ import annotations

import asyncio
import threading

import pytest
from prometheus_client.parser import text_string_to_metric_families

from facmon.kernel.metrics import Counters


def test_counters_are_kept_apart_and_summed_over_labels() -> None:
    one, other = Counters(), Counters()
    one.inc("modbus_polls", device="e1")
    one.inc("modbus_polls", 3, device="e2")
    other.inc("modbus_polls", device="e1")
    assert one.get("modbus_polls") == 4
    assert one.get("modbus_polls", device="e2") == 3
    assert other.get("modbus_polls") == 1
    assert one.get("never_counted") == 0


def test_a_counter_keeps_its_label_names() -> None:
    counters = Counters()
    counters.inc("historian_rejected", reason="not_json")
    with pytest.raises(ValueError, match="labelled"):
        counters.inc("historian_rejected", device="e1")


def test_the_exposition_parses_and_gauges_are_read_when_scraped() -> None:
    counters = Counters()
    backlog = [5]
    counters.gauge("outbox_pending", lambda: backlog[0], "messages waiting")
    counters.inc("gateway_published", 7)
    backlog[0] = 2
    families = {f.name: f for f in text_string_to_metric_families(counters.prometheus())}
    assert families["facmon_outbox_pending"].samples[0].value == 2
    published = [s for s in families["facmon_gateway_published"].samples if s.name.endswith("_total")]
    assert [s.value for s in published] == [7]


async def test_the_exposition_off_the_loop_is_the_same_and_lets_the_loop_run() -> None:
    metrics = Counters()
    for device in range(5000):
        metrics.inc("modbus_polls", device=f"e{device}")
    readers: list[int] = []

    def backlog() -> float:
        readers.append(threading.get_ident())
        return 7.0

    metrics.gauge("outbox_pending", backlog)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0)
            ticks += 1

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    try:
        before = ticks
        text = await metrics.prometheus_off_loop()
        # The loop went on while the text was written (in the loop it would not have turned once).
        assert ticks > before + 1
    finally:
        task.cancel()
    assert text == metrics.prometheus()
    assert "facmon_outbox_pending 7.0" in text.splitlines()
    # Gauges are read in the loop's thread, where what they read belongs.
    assert set(readers) == {threading.get_ident()}
