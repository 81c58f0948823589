"""How long from a fault appearing on a controller to its work order being visible through the API.

    python benchmarks/bench_fault_latency.py [--faults 20] [--poll-interval 1.0]

Starts its own Mosquitto and influxd in a temporary folder, runs the whole system (`run_system`, as `facmon up`
does) for a site of simulated elevators on real Modbus TCP servers, then injects faults one after another on
different elevators and clears them. For each it measures, from the moment the register changes in the simulator:
the work order appearing at GET /api/v1/work-orders. Prints median, 95th percentile and maximum.

At a poll interval of P seconds a fault waits on average P/2 (at most P) for the next poll; the rest is the path
gateway outbox -> MQTT -> rules worker -> database -> API.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from facmon.kernel.mqtt import MqttSettings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from facmon.estate.site import Site
from facmon.kernel.daemons import Influxd, Mosquitto, free_port
from facmon.shell.compose import Endpoints
from facmon.shell.inprocess import demo_headers, system_running
from facmon.shell.logs import configure
from simulators.elevator import ElevatorSimulator
from simulators.site import SiteSimulator

DEVICES = 4
TIMEOUT_S = 15.0


def site(poll_interval_s: float) -> Site:
    return Site.model_validate(
        {
            "site": {"id": "bench"},
            "buildings": [
                {
                    "id": "b1",
                    "devices": [
                        {
                            "id": f"e{i + 1}",
                            "kind": "elevator",
                            "model": "elev-gb-a",
                            "address": {"host": "127.0.0.1", "port": free_port(), "unit": 1},
                            "poll_interval_s": poll_interval_s,
                        }
                        for i in range(DEVICES)
                    ],
                }
            ],
        }
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(root: Path, mqtt: Mosquitto, influx: Influxd, faults: int, poll_interval_s: float) -> list[float]:
    the_site = site(poll_interval_s)
    endpoints = Endpoints(MqttSettings("127.0.0.1", mqtt.port), influx.url, "bench", f"sqlite:///{root / 'wo.db'}")
    simulator = SiteSimulator(the_site, seed=1)
    sim_task = asyncio.create_task(simulator.run())
    latencies: list[float] = []
    rng = random.Random(1)
    try:
        await asyncio.wait_for(simulator.serving.wait(), 10)
        async with (
            system_running(the_site, endpoints, state_dir=root / "state") as api,
            httpx.AsyncClient(base_url=api, timeout=5, headers=await demo_headers(api)) as client,
        ):
            await asyncio.sleep(2 * poll_interval_s + 1)  # every device polled, nothing pending
            for n in range(faults):
                device = f"e{n % DEVICES + 1}"
                sim = simulator.sims[device]
                assert isinstance(sim, ElevatorSimulator)
                # A different code each time, so every fault opens its own work order.
                code = n // DEVICES % 13 + 1
                before = (await client.get("/work-orders", params={"device": device})).json()["total"]
                sim.inject_fault(code)
                injected = time.monotonic()
                while time.monotonic() - injected < TIMEOUT_S:
                    total = (await client.get("/work-orders", params={"device": device})).json()["total"]
                    if total > before:
                        latencies.append(time.monotonic() - injected)
                        break
                    await asyncio.sleep(0.01)
                else:
                    print(f"  fault {n} on {device}: no work order within {TIMEOUT_S} s")
                sim.clear_fault()
                # Let the clear be polled, then wait a random part of a poll interval more: faults must land at
                # random points of the poll cycle, or every one would wait the same time for its poll.
                await asyncio.sleep(poll_interval_s * rng.uniform(1.0, 2.0))
    finally:
        sim_task.cancel()
        await asyncio.gather(sim_task, return_exceptions=True)
    return latencies


Measure = Callable[[Path, Mosquitto, Influxd, int, float], Awaitable[list[float]]]


def arguments(doc: str | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faults", type=int, default=20)
    parser.add_argument("--poll-interval", type=float, default=1.0)
    return parser.parse_args()


async def with_services(measure_: Measure, faults: int, poll_interval_s: float) -> list[float]:
    """Run `measure_` with its own Mosquitto and influxd in a temporary folder."""
    configure("ERROR")
    with tempfile.TemporaryDirectory(prefix="facmon-bench-") as tmp:
        root = Path(tmp)
        with Mosquitto(root / "mosquitto") as mqtt, Influxd(root / "influxd") as influx:
            assert isinstance(mqtt, Mosquitto)
            assert isinstance(influx, Influxd)
            return await measure_(root, mqtt, influx, faults, poll_interval_s)


async def main() -> None:
    args = arguments(__doc__)
    latencies = await with_services(measure, args.faults, args.poll_interval)
    print(
        f"fault on the controller -> work order at GET /api/v1/work-orders, {len(latencies)}/{args.faults} faults, "
        f"poll interval {args.poll_interval} s"
    )
    if latencies:
        print(
            f"  median {statistics.median(latencies):.2f} s   p95 {percentile(latencies, 0.95):.2f} s   "
            f"max {max(latencies):.2f} s   min {min(latencies):.2f} s"
        )


if __name__ == "__main__":
    asyncio.run(main())
