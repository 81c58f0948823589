"""The polling ladder: N Modbus elevator controllers polled every second by one gateway, into InfluxDB.

    python benchmarks/bench_polling.py [--devices 200,1000,2000] [--seconds 25] [--units-per-port 10]
                                       [--profile DIR]

For each N, as deployed: `facmon gateway` and `facmon historian` (separate processes, through the CLI, with a
non-demo site file of N elevators), Mosquitto and influxd, all started here in a temporary folder; the devices are
one simulator process (benchmarks/modbus_farm.py: N / units-per-port Modbus TCP gateways, each with that many unit
ids behind it). After the gateway has polled every device, a window of `--seconds` is measured:

  - polls/s the gateway made (its `modbus_polls` counter);
  - CPU per poll from /proc/<pid>/stat (utime + stime) of the gateway and the historian, their sum (facmon's), and
    that sum as a share of one core; the simulator, Mosquitto and influxd are reported apart, not counted. The
    gateway's time in the kernel (stime) is shown too: on loopback, sending a request also runs the kernel's
    delivery of it to the simulator, which a network card would take over;
  - poll lateness p50 / p99 / max (start of a poll minus its slot), from the gateway's histogram
    `facmon_modbus_poll_lateness_seconds` (quantiles interpolated within a bucket; max is the bucket's bound);
  - points stored in InfluxDB for the window's whole seconds against N per second (each poll is one point, stamped
    with its slot), once the historian has drained;
  - peak RSS (VmHWM) of the gateway and the historian.

With `--profile DIR` (py-spy installed, not a dependency) each step also records the gateway and the historian
with py-spy during its window (collapsed stacks, `DIR/<process>-<N>.txt`) and prints their hottest functions; the
profiler's sampling costs some CPU of its own, so take the figures from a run without it.

Each step gives up waiting after its limits, so the whole ladder stays under five minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_ingest import hottest
from benchmarks.machine import describe
from facmon.kernel.daemons import Influxd, Mosquitto
from facmon.kernel.ports import free_port

ROOT = Path(__file__).resolve().parent.parent

TICKS = os.sysconf("SC_CLK_TCK")
START_LIMIT_S = 60.0
DRAIN_LIMIT_S = 15.0
HISTOGRAM = "facmon_modbus_poll_lateness_seconds"


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def cpu_s(pid: int, *, system_only: bool = False) -> float:
    """utime + stime of a process (or stime alone), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (0 if system_only else int(fields[11])) / TICKS + int(fields[12]) / TICKS


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def site_file(path: Path, devices: int, ports: list[int], units: int) -> None:
    lines = ["site:", "  id: bench", "  name: Polling benchmark", "  timezone: Asia/Shanghai", "buildings:"]
    for b in range(math.ceil(devices / 100)):
        lines += [f"  - id: b{b}", "    devices:"]
        for d in range(b * 100, min(devices, (b + 1) * 100)):
            port, unit = ports[d // units], d % units + 1
            lines += [
                f"      - id: e{d}",
                "        kind: elevator",
                "        model: elev-gb-a",
                f"        address: {{host: 127.0.0.1, port: {port}, unit: {unit}}}",
                "        poll_interval_s: 1",
                "        comm_grace_s: 5",
            ]
    path.write_text("\n".join(lines) + "\n")


@dataclass
class Scrape:
    polls: float
    buckets: list[tuple[float, float]]  # (upper bound, cumulative count)


def scrape(port: int) -> Scrape:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    polls = 0.0
    buckets = []
    for line in text.splitlines():
        if line.startswith("facmon_modbus_polls_total{"):
            polls += float(line.rsplit(" ", 1)[1])
        elif line.startswith(HISTOGRAM + "_bucket{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((math.inf if bound == "+Inf" else float(bound), float(line.rsplit(" ", 1)[1])))
    return Scrape(polls, buckets)


def quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus' histogram_quantile: linear within the bucket the q-th observation falls in."""
    total = buckets[-1][1] if buckets else 0.0
    if total <= 0:
        return math.nan
    rank, lower, below = q * total, 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower
            return lower + (bound - lower) * (rank - below) / max(count - below, 1e-9)
        lower, below = bound, count
    return lower


def highest(buckets: list[tuple[float, float]]) -> str:
    below = 0.0
    bound_seen = "-"
    for bound, count in buckets:
        if count > below:
            bound_seen = "> 5 s" if math.isinf(bound) else f"<= {bound * 1000:g}"
        below = count
    return bound_seen


def points(influx: Influxd, db: str, since: int, until: int) -> int:
    q = f"SELECT count(floor) FROM elevator WHERE time >= {since}s AND time < {until}s"
    body = httpx.get(f"{influx.url}/query", params={"db": db, "q": q}, timeout=10).json()
    series = body["results"][0].get("series")
    return int(series[0]["values"][0][1]) if series else 0


@contextlib.contextmanager
def process(cmd: list[str], log: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_until(check: object, limit_s: float, what: str) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, OSError):
            if check():  # type: ignore[operator]
                return
        time.sleep(0.5)
    raise RuntimeError(f"{what} not within {limit_s:g} s")


@dataclass
class Step:
    devices: int
    polls_s: float
    cpu_us: dict[str, float]
    core_share: float
    p50_ms: float
    p99_ms: float
    max_ms: str
    stored: int
    expected: int
    rss_mb: dict[str, float]


def step(root: Path, n: int, seconds: float, units: int, profile: Path | None = None) -> Step:
    work = root / f"n{n}"
    work.mkdir()
    # Daemons of its own per step: nothing of the step before (sessions, backlog) weighs on this one.
    with Mosquitto(work / "mosquitto") as mqtt, Influxd(work / "influxd") as influx:
        return _measure(work, n, (seconds, units), mqtt, influx, profile)


def profilers(pids: dict[str, int], n: int, seconds: float, out: Path | None) -> list[subprocess.Popen[bytes]]:
    """py-spy recording the gateway and the historian for `seconds` (none without `out`)."""
    if out is None:
        return []
    out.mkdir(parents=True, exist_ok=True)
    spy = [str(Path(sys.executable).with_name("py-spy")), "record", "-d", str(int(seconds)), "-r", "200"]
    return [
        subprocess.Popen(
            [*spy, "-f", "raw", "--nonblocking", "-p", str(pids[name]), "-o", str(out / f"{name}-{n}.txt")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name in ("gateway", "historian")
    ]


def _measure(
    work: Path, n: int, shape: tuple[float, int], mqtt: Mosquitto, influx: Influxd, profile: Path | None
) -> Step:
    seconds, units = shape
    ports = [free_port() for _ in range(math.ceil(n / units))]
    site = work / "site.yaml"
    site_file(site, n, ports, units)
    db = f"poll{n}"
    base = {k: v for k, v in os.environ.items() if not k.startswith("FACMON_")}
    env = base | {
        "FACMON_STATE_DIR": str(work / "state"),
        "FACMON_MQTT_HOST": "127.0.0.1",
        "FACMON_MQTT_PORT": str(mqtt.port),
        "FACMON_INFLUX_URL": influx.url,
        "FACMON_INFLUX_DB": db,
        "FACMON_LOG_JSON": "1",
    }
    gw_port, hist_port = free_port(), free_port()
    facmon = [sys.executable, "-m", "facmon"]
    farm_cmd = [sys.executable, str(ROOT / "benchmarks" / "modbus_farm.py"), "--ports", ",".join(map(str, ports))]
    with (
        process([*farm_cmd, "--units", str(units)], work / "farm.log", base) as farm,
        process(
            [*facmon, "historian", "--site", str(site), "--metrics-port", str(hist_port)], work / "h.log", env
        ) as historian,
        process(
            [*facmon, "gateway", "--site", str(site), "--metrics-port", str(gw_port)], work / "g.log", env
        ) as gateway,
    ):
        wait_until(lambda: "ready" in (work / "farm.log").read_text(), START_LIMIT_S, "simulator")
        wait_until(lambda: scrape(gw_port).polls >= n, START_LIMIT_S, f"{n} polls")
        time.sleep(3)
        pids = {"gateway": gateway.pid, "historian": historian.pid, "simulator": farm.pid}
        assert mqtt.proc is not None
        assert influx.proc is not None
        pids |= {"mosquitto": mqtt.proc.pid, "influxd": influx.proc.pid}
        # The window's CPU leaves out the two scrapes of the gateway's metrics here (a scrape of 1,000 devices'
        # counters costs the gateway a few hundred ms: a Prometheus server's cost, not polling's).
        before = scrape(gw_port)
        cpu0, t0, wall0 = {k: cpu_s(p) for k, p in pids.items()}, time.monotonic(), time.time()
        sys0 = cpu_s(gateway.pid, system_only=True)
        spies = profilers(pids, n, seconds, profile)
        time.sleep(seconds)
        cpu1, t1, wall1 = {k: cpu_s(p) for k, p in pids.items()}, time.monotonic(), time.time()
        sys1 = cpu_s(gateway.pid, system_only=True)
        after = scrape(gw_port)
        since, until = math.ceil(wall0), math.floor(wall1)
        expected = n * (until - since)
        deadline = time.monotonic() + DRAIN_LIMIT_S
        stored = points(influx, db, since, until)
        while stored < expected and time.monotonic() < deadline:
            time.sleep(1)
            stored = points(influx, db, since, until)
        rss = {k: peak_rss_mb(pids[k]) for k in ("gateway", "historian")}
        for spy in spies:
            spy.wait(timeout=60)
    polls = after.polls - before.polls
    used = {k: cpu1[k] - cpu0[k] for k in pids}
    used["facmon"] = used["gateway"] + used["historian"]
    used["gateway_sys"] = sys1 - sys0
    window = [(b, c - c0) for (b, c), (_, c0) in zip(after.buckets, before.buckets, strict=True)]
    return Step(
        devices=n,
        polls_s=polls / (t1 - t0),
        cpu_us={k: v / max(polls, 1) * 1e6 for k, v in used.items()},
        core_share=used["facmon"] / (t1 - t0),
        p50_ms=quantile(0.5, window) * 1000,
        p99_ms=quantile(0.99, window) * 1000,
        max_ms=highest(window),
        stored=stored,
        expected=expected,
        rss_mb=rss,
    )


HEADER = (
    "| devices | polls/s | µs/poll gateway (of it in the kernel) | historian | facmon | share of a core"
    " | lateness p50 / p99 / max ms"
    " | points stored / expected | simulator | mosquitto | influxd (µs/poll) | peak RSS gateway / historian MB |"
    "\n|---:|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---|"
)


def row(s: Step) -> str:
    c = s.cpu_us
    return (
        f"| {s.devices} | {s.polls_s:.0f} | {c['gateway']:.0f} ({c['gateway_sys']:.0f})"
        f" | {c['historian']:.0f} | {c['facmon']:.0f}"
        f" | {s.core_share:.0%} | {s.p50_ms:.1f} / {s.p99_ms:.1f} / {s.max_ms}"
        f" | {s.stored} / {s.expected} ({s.stored / max(s.expected, 1):.1%}) | {c['simulator']:.0f}"
        f" | {c['mosquitto']:.0f} | {c['influxd']:.0f}"
        f" | {s.rss_mb['gateway']:.0f} / {s.rss_mb['historian']:.0f} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", default="200,1000,2000")
    parser.add_argument("--seconds", type=float, default=25.0)
    parser.add_argument("--units-per-port", type=int, default=10)
    parser.add_argument("--one", action="store_true", help="one step, its table row only (how the ladder runs each)")
    parser.add_argument("--profile", type=Path, default=None, help="record each step with py-spy into this folder")
    args = parser.parse_args()
    if args.one:
        with tempfile.TemporaryDirectory(prefix="facmon-bench-polling-") as tmp:
            done = step(Path(tmp), int(args.devices), args.seconds, args.units_per_port, args.profile)
        if args.profile is not None:
            for name in ("gateway", "historian"):
                if (args.profile / f"{name}-{args.devices}.txt").exists():
                    hottest(args.profile / f"{name}-{args.devices}.txt")
        print(row(done), flush=True)
        return 0
    print(describe())
    print(f"load before: {load()}", flush=True)
    rows = []
    # Each step in a process of its own, with its own daemons: nothing of one step weighs on the next.
    for n in args.devices.split(","):
        one = [sys.executable, __file__, "--one", "--devices", n, "--seconds", str(args.seconds)]
        if args.profile is not None:
            one += ["--profile", str(args.profile)]
        done = subprocess.run(
            [*one, "--units-per-port", str(args.units_per_port)], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            print(f"  N={n} FAILED: {done.stderr.strip().splitlines()[-1:]}", flush=True)
            continue
        rows.append(done.stdout.strip().splitlines()[-1])
        print(f"  N={n} done; load: {load()}", flush=True)
    print(HEADER)
    print("\n".join(rows))
    print(f"load after: {load()}")
    return 0 if len(rows) == len(args.devices.split(",")) else 1


if __name__ == "__main__":
    sys.exit(main())
