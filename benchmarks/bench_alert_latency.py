"""How long from a fault appearing on a controller to the first webhook request reaching a receiver.

    python benchmarks/bench_alert_latency.py [--faults 20] [--poll-interval 1.0]

Like bench_fault_latency.py: its own Mosquitto and influxd, the whole system in process (`facmon.shell.inprocess`, as
`facmon up` runs it), simulated elevators on real Modbus TCP servers, and a real HTTP receiver on a free port
configured as a signed webhook channel. Each fault is a car alarm (code 15), an emergency that the escalation
policy alerts at once: simulator register -> poll -> gateway -> MQTT -> rules worker -> work order -> notifier
dispatcher (ticks every second) -> delivery queue -> webhook POST. After each measurement the work order is
cancelled through the API, so the next alarm on that car opens a new one. Prints median and 95th percentile.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import sys
import time
from pathlib import Path

import httpx

from facmon.kernel.mqtt import MqttSettings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_fault_latency import DEVICES, TIMEOUT_S, arguments, percentile, site, with_services

from facmon.estate.site import Site
from facmon.kernel.daemons import Influxd, Mosquitto
from facmon.notifier.channels import WebhookConfig
from facmon.shell.compose import Endpoints
from facmon.shell.inprocess import demo_headers, system_running
from simulators.elevator import ElevatorSimulator
from simulators.site import SiteSimulator
from tests.notifier.support import http_receiver


def alerting_site(poll_interval_s: float) -> Site:
    """The benchmark site of bench_fault_latency, with a technician on call for elevators."""
    raw = site(poll_interval_s).model_dump(mode="json", exclude_none=True)
    raw["technicians"] = [
        {
            "id": "tech",
            "name": "Bench Technician",
            "phone": "13800000000",
            "cards": ["BE0C"],
            "disciplines": ["elevator"],
        }
    ]
    raw["on_call"] = {
        "elevator": {"technicians": ["tech"], "every": "weekly", "handoff": "08:30", "start": "2026-01-05"}
    }
    return Site.model_validate(raw)


async def measure(root: Path, mqtt: Mosquitto, influx: Influxd, faults: int, poll_interval_s: float) -> list[float]:
    the_site = alerting_site(poll_interval_s)
    endpoints = Endpoints(MqttSettings("127.0.0.1", mqtt.port), influx.url, "bench", f"sqlite:///{root / 'wo.db'}")
    simulator = SiteSimulator(the_site, seed=1)
    sim_task = asyncio.create_task(simulator.run())
    latencies: list[float] = []
    rng = random.Random(1)
    try:
        await asyncio.wait_for(simulator.serving.wait(), 10)
        async with http_receiver() as receiver:
            hook = WebhookConfig(url=receiver.url, secret="b" * 40)  # type: ignore[arg-type]
            async with (
                system_running(the_site, endpoints, state_dir=root / "state", webhooks=[hook]) as api,
                httpx.AsyncClient(base_url=api, timeout=5, headers=await demo_headers(api)) as client,
            ):
                await asyncio.sleep(2 * poll_interval_s + 1)
                loop = asyncio.get_running_loop()
                for n in range(faults):
                    device = f"e{n % DEVICES + 1}"
                    sim = simulator.sims[device]
                    assert isinstance(sim, ElevatorSimulator)
                    received = len(receiver.requests)
                    receiver.arrived.clear()
                    sim.inject_fault(15)
                    injected = loop.time()
                    try:
                        await asyncio.wait_for(receiver.arrived.wait(), TIMEOUT_S)
                    except TimeoutError:
                        print(f"  alarm {n} on {device}: no webhook within {TIMEOUT_S} s")
                    else:
                        latencies.append(receiver.requests[received].at - injected)
                        work_order = json.loads(receiver.requests[received].body)["work_order_id"]
                        cancel = {"to": "cancelled", "note": "benchmark alarm"}
                        answer = await client.post(f"/work-orders/{work_order}/transitions", json=cancel)
                        answer.raise_for_status()  # an open work order would swallow the next alarm
                    sim.clear_fault()
                    # Faults must land at random points of the poll and dispatcher cycles.
                    await asyncio.sleep(poll_interval_s * rng.uniform(1.0, 2.0))
    finally:
        sim_task.cancel()
        await asyncio.gather(sim_task, return_exceptions=True)
    return latencies


def _line(name: str, values: list[float]) -> str:
    return (
        f"  {name:<32} median {statistics.median(values):.2f} s   p95 {percentile(values, 0.95):.2f} s   "
        f"max {max(values):.2f} s"
    )


async def main() -> None:
    args = arguments(__doc__)
    started = time.monotonic()
    to_hook = await with_services(measure, args.faults, args.poll_interval)
    print(
        f"car alarm on the controller -> first webhook request at a receiver, {len(to_hook)}/{args.faults} alarms, "
        f"poll interval {args.poll_interval} s ({time.monotonic() - started:.0f} s run)"
    )
    if to_hook:
        print(_line("webhook request received", to_hook))


if __name__ == "__main__":
    asyncio.run(main())
