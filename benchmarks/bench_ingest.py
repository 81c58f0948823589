"""The ingest ladder: vendor JSON over MQTT -> gateway -> backbone -> historian -> InfluxDB, at fixed offered rates.

    python benchmarks/bench_ingest.py [--rates 2000,5000,10000,15000] [--seconds 15] [--devices 200] [--repeat 3]
                                      [--profile DIR]

Starts, in a temporary folder, Mosquitto, influxd, `facmon gateway` and `facmon historian` as deployed (each its own
process, through the CLI, with a non-demo site file of `--devices` gate barriers heard on the broker), and a
generator process that writes pre-encoded MQTT PUBLISH packets (QoS 1, as the barriers' controllers send them) to a
raw socket at a fixed rate. For each offered rate it prints: the rate achieved by the generator, how many points
InfluxDB holds (stored %), how long after the generator stopped the last point was stored (drain), and the CPU
time per message of every process (utime + stime from /proc, over the step and its drain, divided by the points
stored in it when it did not drain) with its peak RSS.
A step gives up waiting for its drain after DRAIN_LIMIT_S; the whole run stays within a few minutes.
With `--profile DIR` (py-spy installed, not a dependency) each step also records the gateway and the historian
with py-spy while the generator runs: DIR/<process>-<rate>.txt, collapsed stacks (flamegraph.pl or speedscope read
them), and the hottest functions by own time are printed after the step.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from facmon.kernel.daemons import Influxd, Mosquitto, free_port  # noqa: E402

DRAIN_LIMIT_S = 30.0
DB = "ingest"
TICK_S = 0.005


# --- the generator (a process of its own: `bench_ingest.py --generate PORT RATE SECONDS DEVICES START`) ---


def _packet(topic: str, payload: bytes, packet_id: int) -> bytes:
    """An MQTT 3.1.1 PUBLISH, QoS 1."""
    t = topic.encode()
    body = struct.pack("!H", len(t)) + t + struct.pack("!H", packet_id) + payload
    return bytes([0x32]) + _remaining_length(len(body)) + body


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _connect(port: int, client_id: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    cid = client_id.encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + struct.pack("!H", len(cid)) + cid
    sock.sendall(bytes([0x10]) + _remaining_length(len(body)) + body)
    assert sock.recv(4)[:2] == b"\x20\x02", "no CONNACK"
    return sock


def generate(port: int, rate: int, seconds: float, devices: int, start: int) -> None:
    """Offer `rate` heartbeats a second for `seconds`, round robin over the devices; prints how many were sent.

    The payloads' `cycles` counts up from `start`, so every message is a distinct point. PUBACKs are read and
    thrown away by a thread, so the broker never waits on us."""
    sock = _connect(port, f"bench-generator-{os.getpid()}")
    threading.Thread(target=lambda: [None for _ in iter(lambda: sock.recv(65536), b"")], daemon=True).start()
    topics = [f"vendor/barrier/g{d:05d}/heartbeat" for d in range(devices)]
    sent, begun = 0, time.monotonic()
    while (elapsed := time.monotonic() - begun) < seconds:
        due = min(int(elapsed * rate) + 1, int(seconds * rate))
        chunk = bytearray()
        while sent < due:
            n = start + sent
            payload = b'{"uptime_s":%d,"cycles":%d,"temperature_c":21.5}' % (n, n)
            chunk += _packet(topics[sent % devices], payload, sent % 65535 + 1)
            sent += 1
        if chunk:
            sock.sendall(chunk)
        time.sleep(TICK_S)
    print(sent, time.monotonic() - begun, flush=True)
    time.sleep(0.5)  # the last PUBACKs
    sock.close()


# --- the run ---


@dataclass
class Proc:
    name: str
    pid: int

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0


def site_file(path: Path, devices: int) -> Path:
    gates = [{"id": f"g{d:05d}", "kind": "gate", "model": "barrier-a", "comm_grace_s": 600} for d in range(devices)]
    path.write_text(yaml.safe_dump({"site": {"id": "bench"}, "buildings": [{"id": "b1", "devices": gates}]}))
    return path


def stored(http: httpx.Client) -> int:
    resp = http.get("/query", params={"db": DB, "q": "SELECT count(cycles) FROM gate"})
    series = resp.json()["results"][0].get("series")
    return int(series[0]["values"][0][1]) if series else 0


def wait_health(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"not healthy:\n{log.read_text()[-3000:]}")


def start_service(root: Path, name: str, site: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    log = root / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "facmon", name, "--site", str(site), "--metrics-port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=root,
        )
    wait_health(port, proc, log)
    return proc, port


def profilers(procs: list[Proc], rate: int, seconds: float, out: Path | None) -> list[subprocess.Popen[bytes]]:
    """py-spy recording facmon's processes for `seconds` (none without `out`)."""
    if out is None:
        return []
    out.mkdir(parents=True, exist_ok=True)
    spy = str(Path(sys.executable).with_name("py-spy"))
    return [
        subprocess.Popen(
            [
                spy,
                "record",
                "-p",
                str(p.pid),
                "-d",
                str(int(seconds)),
                "-r",
                "200",
                "-f",
                "raw",
                "--nonblocking",
                "-o",
                str(out / f"{p.name}-{rate}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for p in procs
        if p.name in ("gateway", "historian")
    ]


def hottest(path: Path, top: int = 25) -> None:
    """Print the functions of a py-spy raw profile with the most own time, and their share of the samples."""
    own: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        leaf = stack.rsplit(";", 1)[-1]
        own[leaf] = own.get(leaf, 0) + int(count)
        total += int(count)
    print(f"{path.name}: {total} samples; own time")
    for name, n in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {100 * n / max(1, total):5.1f} %  {name}")


def step(
    rate: int,
    seconds: float,
    devices: int,
    start: int,
    mqtt: int,
    procs: list[Proc],
    http: httpx.Client,
    profile: Path | None = None,
) -> dict[str, object]:
    before_points = stored(http)
    before = {p.name: p.cpu_s() for p in procs}
    gen = subprocess.Popen(
        [sys.executable, __file__, "--generate", str(mqtt), str(rate), str(seconds), str(devices), str(start)],
        stdout=subprocess.PIPE,
    )
    spies = profilers(procs, rate, seconds, profile)
    gen_proc = Proc("generator", gen.pid)
    gen_cpu = 0.0
    while gen.poll() is None:
        gen_cpu = gen_proc.cpu_s() if Path(f"/proc/{gen.pid}/stat").exists() else gen_cpu
        gen_rss = gen_proc.peak_rss_mb()
        time.sleep(0.2)
    out = gen.communicate()[0].decode().split()
    sent, gen_s = int(out[0]), float(out[1])
    stopped = time.monotonic()
    points = stored(http) - before_points
    while points < sent and time.monotonic() - stopped < DRAIN_LIMIT_S:
        time.sleep(0.1)
        points = stored(http) - before_points
    drain = time.monotonic() - stopped
    for spy in spies:
        spy.wait(timeout=60)
    if profile is not None:
        for name in ("gateway", "historian"):
            if (profile / f"{name}-{rate}.txt").exists():
                hottest(profile / f"{name}-{rate}.txt")
    # Per message handled: a step that did not drain handled only what it stored (its backlog is the next step's).
    handled = max(1, min(points, sent))
    cpu = {p.name: (p.cpu_s() - before[p.name]) / handled * 1e6 for p in procs}
    cpu["generator"] = gen_cpu / sent * 1e6
    rss = {p.name: p.peak_rss_mb() for p in procs}
    rss["generator"] = gen_rss
    return {
        "offered": rate,
        "achieved": sent / gen_s,
        "stored_pct": 100.0 * points / sent,
        "drain_s": drain if points >= sent else None,
        "cpu": cpu,
        "rss": rss,
    }


def machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    return f"{os.cpu_count()} cores, {model}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"


def report(results: list[dict[str, object]], names: list[str]) -> None:
    head = "| offered/s | achieved/s | stored % | drain s | facmon µs/msg | " + " | ".join(f"{n} µs" for n in names)
    print(head + " | " + " | ".join(f"{n} MB" for n in names) + " |")
    print("|" + "---|" * (5 + 2 * len(names)))
    for r in results:
        cpu = r["cpu"]
        rss = r["rss"]
        assert isinstance(cpu, dict)
        assert isinstance(rss, dict)
        drain = r["drain_s"]
        facmon = cpu["gateway"] + cpu["historian"]
        cells = [
            f"{r['offered']:,}",
            f"{r['achieved']:,.0f}",
            f"{r['stored_pct']:.1f}",
            "not drained" if drain is None else f"{drain:.1f}",
            f"{facmon:.0f}",
            *(f"{cpu[n]:.0f}" for n in names),
            *(f"{rss[n]:.0f}" for n in names),
        ]
        print("| " + " | ".join(cells) + " |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="2000,5000,10000,15000")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", type=Path, default=None, help="record each step with py-spy into this folder")
    args = parser.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    print(f"machine: {machine()}")
    print(f"{args.devices} gate barriers, {args.seconds:.0f} s per rate, QoS 1 vendor heartbeats, {args.repeat} run(s)")
    names = ["gateway", "historian", "mosquitto", "influxd", "generator"]
    with tempfile.TemporaryDirectory(prefix="facmon-bench-ingest-") as tmp:
        root = Path(tmp)
        site = site_file(root / "site.yaml", args.devices)
        with Mosquitto(root / "mosquitto") as mqtt, Influxd(root / "influxd") as influx:
            assert isinstance(mqtt, Mosquitto)
            assert isinstance(influx, Influxd)
            assert mqtt.proc is not None
            assert influx.proc is not None
            env = {k: v for k, v in os.environ.items() if not k.startswith("FACMON_")} | {
                "FACMON_STATE_DIR": str(root / "state"),
                "FACMON_MQTT_HOST": "127.0.0.1",
                "FACMON_MQTT_PORT": str(mqtt.port),
                "FACMON_INFLUX_URL": influx.url,
                "FACMON_INFLUX_DB": DB,
                "FACMON_LOG_LEVEL": "WARNING",
            }
            services = [start_service(root, name, site, env) for name in ("gateway", "historian")]
            try:
                procs = [Proc("gateway", services[0][0].pid), Proc("historian", services[1][0].pid)]
                procs += [Proc("mosquitto", mqtt.proc.pid), Proc("influxd", influx.proc.pid)]
                start = 0
                with httpx.Client(base_url=influx.url, timeout=30) as http:
                    for run in range(args.repeat):
                        results = []
                        for rate in rates:
                            results.append(
                                step(rate, args.seconds, args.devices, start, mqtt.port, procs, http, args.profile)
                            )
                            start += int(rate * args.seconds) + 1
                        print(f"run {run + 1} ({machine()})")
                        report(results, names)
            finally:
                for proc, _ in services:
                    proc.terminate()
                    proc.wait(timeout=30)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--generate":
        port, rate, seconds, devices, start = sys.argv[2:7]
        generate(int(port), int(rate), float(seconds), int(devices), int(start))
    else:
        main()
