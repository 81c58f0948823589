"""How long from a fault appearing on a controller to the first webhook request reaching a receiver.

    python benchmarks/bench_alert_latency.py [--faults 20] [--poll-interval 1.0]

Like bench_fault_latency.py: its own Mosquitto and influxd, the whole system in process, simulated elevators on real
Modbus TCP servers. A real HTTP receiver listens on a free port; a WebhookChannel (generic template, signed) sends
each new work order to it. Prints, from the moment the register changes in the simulator: the work order visible at
GET /api/v1/work-orders, and the webhook request arriving, as median and 95th percentile.

The rules worker has no "work order opened" hook yet (the dispatcher wiring is being added with escalation), so this
benchmark stands in for it with a 10 ms poll of the API: the webhook figure includes that poll, and once the hook
exists it should drop by the API read and poll delay.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_fault_latency import DEVICES, TIMEOUT_S, percentile, site

from facmon.clock import SystemClock
from facmon.inprocess import system_running
from facmon.logs import configure
from facmon.services import Influxd, Mosquitto
from facmon.up import Endpoints
from notifier.base import Notification, Recipient
from notifier.channels import WebhookChannel, WebhookConfig
from simulators.elevator import ElevatorSimulator
from simulators.site import SiteSimulator
from tests.notifier.support import http_receiver

ON_CALL = Recipient(id="bench-tech", name="Bench Technician", phone="+8613800000000")


def to_notification(wo: dict[str, object]) -> Notification:
    return Notification(
        key=f"wo{wo['id']}/opened/{ON_CALL.id}/webhook",
        work_order_id=int(str(wo["id"])),
        site=str(wo["site"]),
        building=str(wo["building"]),
        device=str(wo["device"]),
        kind=str(wo["kind"]),
        fault=str(wo["fault"]),
        priority=str(wo["priority"]),
        title=str(wo["title"]),
        sla_clock=None,
        sla_left_s=None,
        ack_url=None,
        reason="opened",
        created_at=SystemClock().now(),
    )


async def measure(
    root: Path, mqtt: Mosquitto, influx: Influxd, faults: int, poll_interval_s: float
) -> tuple[list[float], list[float]]:
    the_site = site(poll_interval_s)
    endpoints = Endpoints("127.0.0.1", mqtt.port, influx.url, "bench", f"sqlite:///{root / 'wo.db'}")
    simulator = SiteSimulator(the_site, seed=1)
    sim_task = asyncio.create_task(simulator.run())
    to_work_order: list[float] = []
    to_webhook: list[float] = []
    rng = random.Random(1)
    try:
        await asyncio.wait_for(simulator.serving.wait(), 10)
        async with (
            http_receiver() as receiver,
            system_running(the_site, endpoints, state_dir=root / "state") as api,
            httpx.AsyncClient(base_url=api, timeout=5) as client,
            WebhookChannel(WebhookConfig(url=receiver.url, secret="bench-secret"), SystemClock()) as channel,
        ):
            await asyncio.sleep(2 * poll_interval_s + 1)
            loop = asyncio.get_running_loop()
            for n in range(faults):
                device = f"e{n % DEVICES + 1}"
                sim = simulator.sims[device]
                assert isinstance(sim, ElevatorSimulator)
                code = n // DEVICES % 13 + 1
                before = (await client.get("/work-orders", params={"device": device})).json()["total"]
                received = len(receiver.requests)
                sim.inject_fault(code)
                injected = loop.time()
                while loop.time() - injected < TIMEOUT_S:
                    page = (await client.get("/work-orders", params={"device": device})).json()
                    if page["total"] > before:
                        to_work_order.append(loop.time() - injected)
                        await channel.send(to_notification(page["items"][0]), ON_CALL)
                        to_webhook.append(receiver.requests[received].at - injected)
                        break
                    await asyncio.sleep(0.01)
                else:
                    print(f"  fault {n} on {device}: no work order within {TIMEOUT_S} s")
                sim.clear_fault()
                await asyncio.sleep(poll_interval_s * rng.uniform(1.0, 2.0))
    finally:
        sim_task.cancel()
        await asyncio.gather(sim_task, return_exceptions=True)
    return to_work_order, to_webhook


def _line(name: str, values: list[float]) -> str:
    return (
        f"  {name:<32} median {statistics.median(values):.2f} s   p95 {percentile(values, 0.95):.2f} s   "
        f"max {max(values):.2f} s"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faults", type=int, default=20)
    parser.add_argument("--poll-interval", type=float, default=1.0)
    args = parser.parse_args()
    configure("ERROR")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="facmon-bench-") as tmp:
        root = Path(tmp)
        with Mosquitto(root / "mosquitto") as mqtt, Influxd(root / "influxd") as influx:
            assert isinstance(mqtt, Mosquitto)
            assert isinstance(influx, Influxd)
            to_wo, to_hook = await measure(root, mqtt, influx, args.faults, args.poll_interval)
    print(
        f"fault on the controller -> first webhook request at a receiver, {len(to_hook)}/{args.faults} faults, "
        f"poll interval {args.poll_interval} s ({time.monotonic() - started:.0f} s run)"
    )
    if to_hook:
        print(_line("work order at the API", to_wo))
        print(_line("webhook request received", to_hook))
        send_ms = sorted(1000 * (h - w) for h, w in zip(to_hook, to_wo, strict=True))
        name = "of which the webhook send"
        print(f"  {name:<32} median {statistics.median(send_ms):.1f} ms   max {send_ms[-1]:.1f} ms")


if __name__ == "__main__":
    asyncio.run(main())
