"""How late each poll starts after its slot, as the gateway's histogram `facmon_modbus_poll_lateness_seconds`: one
observation per poll, and a loop held up shows as late polls, against a real pymodbus server."""

from __future__ import annotations

import time

from collectors.modbus.link import ModbusLinks
from collectors.modbus.poller import PollTiming
from collectors.modbus.polling import LATENESS
from facmon.kernel.daemons import free_port
from simulators.endpoint import ModbusEndpoint
from tests.collectors.support import FrameSource
from tests.collectors.test_modbus_resilience import DRIVER, watching
from tests.simulators.support import wait_until


def _buckets(exposition: str) -> dict[str, float]:
    """The histogram's cumulative bucket counts by upper bound ("0.1", "+Inf")."""
    found = {}
    for line in exposition.splitlines():
        if line.startswith(f"facmon_{LATENESS}_bucket{{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            found[bound] = float(line.rsplit(" ", 1)[1])
    return found


def _late(buckets: dict[str, float]) -> float:
    """Polls that started more than 0.2 s after their slot."""
    return buckets["+Inf"] - buckets["0.2"]


async def test_every_poll_is_timed_and_a_held_up_loop_makes_late_polls() -> None:
    port = free_port()
    endpoint = ModbusEndpoint("127.0.0.1", port, [FrameSource(DRIVER)])
    await endpoint.start()
    timing = PollTiming(interval_s=0.1, comm_grace_s=3.0, timeout_s=0.5)
    try:
        async with watching("e1", port, timing, ModbusLinks()) as watched:
            await wait_until(lambda: len(watched.readings) >= 3, what="three polls")
            late = _late(_buckets(watched.metrics.prometheus()))
            # The whole loop held up, as a blocking call would: the poll due meanwhile starts 0.4 s late or more.
            time.sleep(0.5)  # noqa: ASYNC251
            count = len(watched.readings)
            await wait_until(lambda: len(watched.readings) >= count + 2, what="two more polls")
    finally:
        await endpoint.stop()
    buckets = _buckets(watched.metrics.prometheus())
    # One observation per poll started.
    assert buckets["+Inf"] == watched.metrics.get("modbus_polls")
    assert _late(buckets) >= late + 1, buckets
