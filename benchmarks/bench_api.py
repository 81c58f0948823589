"""The HTTP API under load: 20,000 work orders and 2,000 devices, 1 and 20 concurrent clients, SQLite and PostgreSQL.

    python benchmarks/bench_api.py [--duration 15] [--workers 1,2] [--databases sqlite,postgres]

For each database: writes the site files and the history of benchmarks/api_seed.py, creates an admin and an API
token with `facmon users add` and `facmon tokens create`, and starts `facmon api` as an operator does (not in demo
mode: a secret key, FACMON_DB_URL; no InfluxDB, so the device detail says its readings are unavailable). Then `wrk`
(Debian package `wrk`) keeps 1, then 20 connections busy for `--duration` seconds against each of

- the console's work-order list, `GET /api/v1/work-orders?sort=urgency` (first page, the default size),
- the device list, `GET /api/v1/devices` (its first page, the default size),
- a device's detail, `GET /api/v1/devices/<site>/<device>`, over 100 devices with open work orders,

and prints requests/s, latency p50, p95, p99 and max, errors, and the CPU time per request of the API's processes
and of PostgreSQL's (from /proc/<pid>/stat), with the machine (cores, CPU model) and its load (`uptime`) before the
runs. PostgreSQL is a server of our own (facmon.kernel.daemons.Postgres) in the temporary folder.
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from api_seed import Estate, seed, write_sites

from facmon.kernel.daemons import Postgres
from facmon.kernel.db import make_engine
from facmon.kernel.ports import free_port
from facmon.shell.migrations.schema import create_schema

FACMON = str(Path(sys.executable).parent / "facmon")
TICKS = os.sysconf("SC_CLK_TCK")

# wrk reports what the closed loop saw; `done` prints it as one line this script reads.
WRK_SCRIPT = """
wrk.headers["Authorization"] = "Bearer %(token)s"
local paths = {%(paths)s}
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", paths[(n %% #paths) + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %%d %%d %%d %%d %%.0f %%.0f %%.0f %%.0f\\n", summary.requests, summary.duration,
    e.status, e.connect + e.read + e.write + e.timeout, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max))
end
"""


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return f"{os.cpu_count()} cores, {model}, {platform.python_implementation()} {platform.python_version()}"


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def _tree(root: int) -> list[int]:
    """`root` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def cpu_seconds(root: int | None) -> float:
    """CPU time of `root` and its descendants, alive or ended, in seconds (0 without a process)."""
    if root is None:
        return 0.0
    total = 0
    for pid in _tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # utime, stime, and those of its children that ended (PostgreSQL's backends end with their connections)
        total += sum(int(v) for v in fields[11:15])
    return total / TICKS


@dataclass(frozen=True)
class Figures:
    requests: int
    seconds: float
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    api_cpu_us: float
    db_cpu_us: float


def run_wrk(
    url: str, paths: list[str], token: str, clients: int, duration: float, pids: tuple[int, int | None]
) -> Figures:
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    script.write_text(WRK_SCRIPT % {"token": token, "paths": ", ".join(f'"{p}"' for p in paths)})
    api_before, db_before = cpu_seconds(pids[0]), cpu_seconds(pids[1])
    command = ["wrk", "-t", str(min(2, clients)), "-c", str(clients), "-d", f"{duration:.0f}s", "--timeout", "10s"]
    result = subprocess.run([*command, "-s", str(script), url], capture_output=True, text=True, check=False)
    api_cpu, db_cpu = cpu_seconds(pids[0]) - api_before, cpu_seconds(pids[1]) - db_before
    script.unlink()
    line = next((x for x in result.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk said: {result.stdout[-500:]} {result.stderr[-500:]}")
    requests, micros, status, sockets, p50, p95, p99, peak = (float(v) for v in line.split()[1:])
    per = max(1.0, requests)
    return Figures(
        int(requests), micros / 1e6, int(status), int(sockets), p50 / 1e3, p95 / 1e3, p99 / 1e3, peak / 1e3,
        api_cpu / per * 1e6, db_cpu / per * 1e6,
    )  # fmt: skip


def _cli(env: dict[str, str], *args: str, stdin: str = "") -> str:
    result = subprocess.run([FACMON, *args], input=stdin, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"facmon {' '.join(args)}: {result.stderr[-1000:]}")
    return result.stdout.strip()


@contextmanager
def api_running(estate: Estate, env: dict[str, str], workers: int) -> Iterator[tuple[str, int]]:
    """`facmon api` on a free port; (its URL, its pid)."""
    port = free_port()
    command = [FACMON, "api", "--port", str(port), "--log-level", "WARNING"]
    command += [arg for path in estate.site_files for arg in ("--site", str(path))]
    if workers > 1:
        command += ["--workers", str(workers)]
    process = subprocess.Popen(command, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"facmon api stopped with {process.returncode}")
            try:
                if httpx.get(f"{url}/api/v1/health", timeout=2).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("facmon api did not answer within 60 s")
            time.sleep(0.2)
        yield url, process.pid
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def targets(url: str, token: str, estate: Estate) -> dict[str, list[str]]:
    """The paths of each endpoint measured, after checking that each answers what the data holds."""
    headers = {"Authorization": f"Bearer {token}"}
    page = httpx.get(f"{url}/api/v1/work-orders", params={"sort": "urgency"}, headers=headers, timeout=30)
    page.raise_for_status()
    devices = httpx.get(f"{url}/api/v1/devices", headers=headers, timeout=30).json()
    if devices["total"] != len(estate.devices):
        raise RuntimeError(f"the device list has {devices['total']} devices, the site files {len(estate.devices)}")
    faulty = httpx.get(f"{url}/api/v1/devices", params={"state": "fault"}, headers=headers, timeout=30).json()
    busy = faulty["items"]
    return {
        "work orders ?sort=urgency": ["/api/v1/work-orders?sort=urgency"],
        "device list": ["/api/v1/devices"],
        "device detail": [f"/api/v1/devices/{d['site']}/{d['id']}" for d in busy],
    }


def bench_database(name: str, db_url: str, folder: Path, args: argparse.Namespace, db_pid: int | None) -> None:
    estate = write_sites(folder)
    engine = make_engine(db_url)
    create_schema(engine)
    started = time.monotonic()
    counts = seed(engine, estate)
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.exec_driver_sql("SELECT setval(pg_get_serial_sequence('work_orders', 'id'), 20000)")
        # As autovacuum leaves a table some time after it was filled: statistics, and the visibility map that lets
        # an index answer a count without visiting every row.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE")
    engine.dispose()
    mix = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    print(f"{name}: {sum(counts.values())} work orders ({mix}), {len(estate.devices)} devices, "
          f"seeded in {time.monotonic() - started:.1f} s", flush=True)  # fmt: skip
    env = dict(os.environ, FACMON_DB_URL=db_url, FACMON_STATE_DIR=str(folder / "state"))
    env["FACMON_SECRET_KEY"] = secrets.token_urlsafe(32)
    env.pop("FACMON_DEMO", None)
    env.pop("FACMON_INFLUX_URL", None)
    _cli(env, "users", "add", "bench-admin", "--role", "admin", "--password-stdin", stdin=secrets.token_urlsafe(16))
    token = _cli(env, "tokens", "create", "--user", "bench-admin", "--name", "benchmark").splitlines()[-1]
    for workers in args.workers:
        with api_running(estate, env, workers) as (url, pid):
            paths = targets(url, token, estate)
            print(f"\n{name}, {workers} API worker(s): load before the runs: {uptime()}", flush=True)
            table(lambda p, c, u=url, i=pid: run_wrk(u, p, token, c, args.duration, (i, db_pid)), paths, args.clients)


def table(run: Callable[[list[str], int], Figures], paths: dict[str, list[str]], clients: list[int]) -> None:
    print("| endpoint | clients | req/s | p50 ms | p95 ms | p99 ms | max ms | errors | API CPU µs/req "
          "| DB CPU µs/req |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|", flush=True)
    for label, endpoint_paths in paths.items():
        for n in clients:
            f = run(endpoint_paths, n)
            print(
                f"| {label} | {n} | {f.requests / f.seconds:,.0f} | {f.p50_ms:.1f} | {f.p95_ms:.1f} | {f.p99_ms:.1f} "
                f"| {f.max_ms:.0f} | {f.non_2xx + f.socket_errors} | {f.api_cpu_us:,.0f} | "
                f"{'-' if f.db_cpu_us == 0 else f'{f.db_cpu_us:,.0f}'} |",
                flush=True,
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per endpoint and client count")
    parser.add_argument("--clients", type=lambda s: [int(x) for x in s.split(",")], default=[1, 20])
    parser.add_argument("--workers", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2])
    parser.add_argument("--databases", default="sqlite,postgres")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("needs wrk (Debian package wrk)", file=sys.stderr)
        return 2
    print(f"machine: {machine()}")
    print(f"load: {uptime()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="facmon-bench-api-") as tmp:
        root = Path(tmp)
        for name in args.databases.split(","):
            folder = root / name
            folder.mkdir()
            if name == "sqlite":
                bench_database(name, f"sqlite:///{folder / 'facmon.db'}", folder, args, None)
            elif name == "postgres":
                with Postgres(folder) as server:
                    url = server.create_database("facmon")
                    bench_database(name, url, folder, args, server.proc.pid if server.proc else None)
            else:
                parser.error(f"unknown database {name!r}: sqlite or postgres")
    return 0


if __name__ == "__main__":
    sys.exit(main())
