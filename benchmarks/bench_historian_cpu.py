"""The historian's own CPU per reading: backbone batches at fixed rates -> `facmon historian` -> InfluxDB.

    python benchmarks/bench_historian_cpu.py [--rates 2000,5000,10000] [--seconds 10] [--devices 200]

Starts, in a temporary folder, Mosquitto, influxd and `facmon historian` as deployed (its own process, through the
CLI, with a non-demo site file of `--devices` gate barriers), and publishes pre-encoded backbone batches of 100
readings (QoS 1, as the gateway does, topic facmon/v1/<site>/gate/_batch/state) at each offered rate of readings a
second. For each rate it prints: readings stored %, how long after the publisher stopped the last point was stored
(drain), and the CPU time per reading (utime + stime from /proc over the step and its drain, divided by the
readings stored) of the historian, Mosquitto and influxd apart. The ingest ladder (bench_ingest.py) measures the
gateway and the historian together; this one isolates the historian. A step gives up after DRAIN_LIMIT_S.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_ingest import DB, Proc, machine, site_file, start_service, stored  # noqa: E402
from facmon.kernel.batches import batch_topic, encode_batch  # noqa: E402
from facmon.kernel.daemons import Influxd, Mosquitto  # noqa: E402
from facmon.kernel.model import DeviceKind, DeviceRef, Reading  # noqa: E402

PER_BATCH = 100
DRAIN_LIMIT_S = 30.0
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def batches(devices: int, first: int, count: int) -> list[bytes]:
    """`count` batches of distinct readings (cycles counts up from `first * PER_BATCH`)."""
    out = []
    for b in range(first, first + count):
        readings = []
        for r in range(PER_BATCH):
            n = b * PER_BATCH + r
            ref = DeviceRef(
                site="bench", building="b1", device=f"g{n % devices:05d}", kind=DeviceKind.GATE, model="barrier-a"
            )
            values = {"cycles": n, "temperature_c": 21.5}
            readings.append(
                Reading(ref=ref, ts=T0 + timedelta(milliseconds=n), values=values).model_dump_json().encode()
            )
        out.append(encode_batch(readings))
    return out


def publish(port: int, payloads: list[bytes], rate: int) -> float:
    """Publish the batches at `rate` readings a second; the seconds it took."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-historian-publisher")
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", port)
    client.loop_start()
    topic = batch_topic("bench", "gate")
    begun = time.monotonic()
    infos = []
    for n, payload in enumerate(payloads):
        wait = begun + n * PER_BATCH / rate - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        infos.append(client.publish(topic, payload, qos=1))
    for info in infos:
        info.wait_for_publish(30)
    took = time.monotonic() - begun
    client.loop_stop()
    client.disconnect()
    return took


def step(rate: int, seconds: float, devices: int, first: int, mqtt: int, procs: list[Proc], http: httpx.Client) -> str:
    count = int(rate * seconds) // PER_BATCH
    payloads = batches(devices, first, count)
    before_points = stored(http)
    before = {p.name: p.cpu_s() for p in procs}
    took = publish(mqtt, payloads, rate)
    stopped = time.monotonic()
    sent = count * PER_BATCH
    points = stored(http) - before_points
    while points < sent and time.monotonic() - stopped < DRAIN_LIMIT_S:
        time.sleep(0.1)
        points = stored(http) - before_points
    drain = time.monotonic() - stopped
    handled = max(1, min(points, sent))
    cpu = {p.name: (p.cpu_s() - before[p.name]) / handled * 1e6 for p in procs}
    cells = [
        f"{rate:,}",
        f"{sent / took:,.0f}",
        f"{100.0 * points / sent:.1f}",
        f"{drain:.1f}" if points >= sent else "not drained",
        *(f"{cpu[p.name]:.1f}" for p in procs),
        f"{procs[0].peak_rss_mb():.0f}",
    ]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="2000,5000,10000")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--devices", type=int, default=200)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(
        f"historian alone: batches of {PER_BATCH} readings of {args.devices} gate barriers, {args.seconds:g} s a rate"
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        mosquitto, influxd = Mosquitto(root / "mosquitto"), Influxd(root / "influxd")
        mosquitto.start()
        influxd.start()
        historian: subprocess.Popen[bytes] | None = None
        try:
            site = site_file(root / "site.yaml", args.devices)
            env = {k: v for k, v in os.environ.items() if not k.startswith("FACMON_")} | {
                "FACMON_LOG_LEVEL": "WARNING",
                "FACMON_STATE_DIR": str(root / "state"),
                "FACMON_MQTT_HOST": "127.0.0.1",
                "FACMON_MQTT_PORT": str(mosquitto.port),
                "FACMON_INFLUX_URL": influxd.url,
                "FACMON_INFLUX_DB": DB,
            }
            historian, _ = start_service(root, "historian", site, env)
            assert mosquitto.proc is not None
            assert influxd.proc is not None
            procs = [Proc("historian", historian.pid), Proc("mosquitto", mosquitto.proc.pid)]
            procs.append(Proc("influxd", influxd.proc.pid))
            head = "| offered/s | achieved/s | stored % | drain s | historian µs | mosquitto µs | influxd µs |"
            print(head + " historian MB |")
            print("|---|---|---|---|---|---|---|---|")
            first = 0
            with httpx.Client(base_url=influxd.url, timeout=10) as http:
                for rate in (int(r) for r in args.rates.split(",")):
                    print(step(rate, args.seconds, args.devices, first, mosquitto.port, procs, http), flush=True)
                    first += int(rate * args.seconds) // PER_BATCH
            print(f"load average after: {machine().rsplit('load average ', 1)[1]}")
        finally:
            if historian is not None:
                historian.terminate()
                historian.wait(30)
            mosquitto.stop()
            influxd.stop()


if __name__ == "__main__":
    main()
