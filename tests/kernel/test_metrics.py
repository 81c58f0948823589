"""The process's counters over prometheus_client: one registry per Counters, labels fixed per counter."""

from __future__ import annotations

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
