"""Two estates run as users deploy them, for the KPI recomputation (tests/system/test_kpi_recomputed.py).

Every facmon service is its own process started through the CLI in a non-demo configuration (tests/system/
processes.py, topology.py): `facmon simulate` for estate A's devices, a gateway per estate, one historian, one rules
worker (with short SLA clocks: `--sla`), one notifier and the API, on the shared test Mosquitto and influxd.

Estate A (`<prefix>-a`, Asia/Shanghai): building b1 with e1 (main) and e2 (peak), fire panel fp1 and gate barrier
ga; building b2 with e3 (main) and e4 (backup). Every elevator is an elev-gb-a (it has the controller's entrapment
flag). Technicians: li and zhao (elevator), wang (fire). Estate B (`<prefix>-b`): gate barrier gb, whose card reads
are a foreign site's for A's technicians, and backup elevator e9 that no simulator answers; its technician chen
works on security only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from facmon.kernel.daemons import Influxd, Mosquitto, free_port
from tests.system.processes import FacmonProcesses, Started
from tests.system.topology import PROBED, service_args, service_env, wait_healthy

PASSWORD = "a-long-test-password"
# Eight Python processes starting at once on a machine shared with other work take a while.
START_TIMEOUT_S = 150.0
# The short clocks of this run, as an SLA profiles file for `facmon rules --sla` (every profile the rules name).
SHORT_SLA: dict[str, Any] = {
    "profiles": [
        {
            "id": "elevator.entrapment",
            "main": "on_site",
            "clocks": [
                {"name": "acknowledge", "milestone": "acknowledged", "within": "10s"},
                {"name": "on_site", "milestone": "on_site", "within": "20s"},
                {"name": "statutory_on_site", "milestone": "on_site", "within": "30s"},
                {"name": "repair", "milestone": "resolved", "within": "45s"},
            ],
        },
        *(
            {
                "id": profile,
                "clocks": [
                    {"name": "on_site", "milestone": "on_site", "within": "20s"},
                    {"name": "repair", "milestone": "resolved", "within": "45s"},
                ],
            }
            for profile in ("elevator.fault", "fire.point", "fire.panel", "gate.fault", "camera.fault")
        ),
        {
            "id": "comm_lost",
            "hold": "10min",
            "clocks": [
                {"name": "on_site", "milestone": "on_site", "within": "2h"},
                {"name": "repair", "milestone": "resolved", "within": "24h"},
            ],
        },
    ]
}
TECHNICIANS = {
    "li": {"name": "Li Ming", "cards": ["A1001"], "disciplines": ["elevator"]},
    "zhao": {"name": "Zhao Lei", "cards": ["A1002"], "disciplines": ["elevator"]},
    "wang": {"name": "Wang Fang", "cards": ["F2001"], "disciplines": ["fire"]},
}


def _technicians(people: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"id": tid, "phone": f"1380000{n:04d}", "email": f"{tid}@estate.example", **person}
        for n, (tid, person) in enumerate(people.items(), start=1)
    ]


def _elevator(device: str, role: str, port: int) -> dict[str, Any]:
    return {
        "id": device,
        "kind": "elevator",
        "model": "elev-gb-a",
        "role": role,
        "address": {"host": "127.0.0.1", "port": port, "unit": 1},
        "poll_interval_s": 0.5,
    }


def site_files(prefix: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Estate A's and estate B's site files."""
    a_port, b_port = free_port(), free_port()
    rota = {"technicians": ["li", "zhao"], "every": "1w", "handoff": "08:30", "start": "2026-01-05"}
    estate_a = {
        "site": {"id": f"{prefix}-a", "name": "Estate A", "timezone": "Asia/Shanghai"},
        "technicians": _technicians(TECHNICIANS),
        "on_call": {"elevator": rota},
        "buildings": [
            {
                "id": "b1",
                "devices": [
                    _elevator("e1", "main", a_port),
                    _elevator("e2", "peak", a_port) | {"address": {"host": "127.0.0.1", "port": a_port, "unit": 2}},
                    {
                        "id": "fp1",
                        "kind": "fire_panel",
                        "model": "fire-gb-a",
                        "address": {"host": "127.0.0.1", "port": free_port(), "unit": 1},
                    },
                    {"id": "ga", "kind": "gate", "model": "barrier-a", "vendor_id": f"{prefix}-ga"},
                ],
            },
            {"id": "b2", "devices": [_elevator("e3", "main", b_port), _elevator("e4", "backup", free_port())]},
        ],
    }
    chen = {"chen": {"name": "Chen Jie", "cards": ["B3001"], "disciplines": ["security"]}}
    estate_b = {
        "site": {"id": f"{prefix}-b", "name": "Estate B", "timezone": "Asia/Shanghai"},
        "technicians": _technicians(chen),
        "buildings": [
            {
                "id": "bb1",
                "devices": [
                    {"id": "gb", "kind": "gate", "model": "barrier-a", "vendor_id": f"{prefix}-gb"},
                    # Nothing answers at its address: the estate's only elevator is never heard.
                    _elevator("e9", "backup", free_port()),
                ],
            }
        ],
    }
    return estate_a, estate_b


@dataclass
class KpiEstate:
    """The running system; `async with` starts it and stops every process it started."""

    workdir: Path
    prefix: str
    mosquitto: Mosquitto
    influxd: Influxd
    influx_db: str
    api_port: int = field(default_factory=free_port)
    ports: dict[str, int] = field(default_factory=lambda: {name: free_port() for name in (*PROBED, "gateway-b")})
    services: dict[str, Started] = field(default_factory=dict)
    sites: tuple[dict[str, Any], dict[str, Any]] = field(init=False)
    _facmon: FacmonProcesses | None = None

    @property
    def facmon(self) -> FacmonProcesses:
        assert self._facmon is not None, "the estates are not running"
        return self._facmon

    @property
    def database(self) -> Path:
        return self.workdir / "state" / "facmon.db"

    @property
    def site_a(self) -> str:
        return f"{self.prefix}-a"

    @property
    def site_b(self) -> str:
        return f"{self.prefix}-b"

    def path(self, name: str) -> Path:
        return self.workdir / name

    def _write_files(self) -> None:
        self.sites = site_files(self.prefix)
        for name, content in zip(("site-a.yaml", "site-b.yaml"), self.sites, strict=True):
            self.path(name).write_text(yaml.safe_dump(content, sort_keys=False))
        self.path("sla.yaml").write_text(yaml.safe_dump(SHORT_SLA, sort_keys=False))

    async def __aenter__(self) -> KpiEstate:
        self._write_files()
        env = service_env(
            self.workdir,
            mqtt_port=self.mosquitto.port,
            influx_url=self.influxd.url,
            influx_db=self.influx_db,
            public_url=f"http://127.0.0.1:{self.api_port}",
            webhooks=[],
        )
        self._facmon = FacmonProcesses(self.workdir, env)
        # The schema first for the services that share the database (as deploy/systemd does before their units);
        # the others start meanwhile, and the admin is made while those start.
        migrating = asyncio.create_task(asyncio.to_thread(self.facmon.run, "db", "upgrade"))
        a, b = str(self.path("site-a.yaml")), str(self.path("site-b.yaml"))
        both = ["--site", a, "--site", b]
        self._start("simulate", "simulate", "--site", a)
        self._start("gateway", "gateway", *service_args("gateway", self.path("site-a.yaml"), self.ports))
        self._start("gateway-b", "gateway", "--site", b, "--metrics-port", str(self.ports["gateway-b"]))
        self._start("historian", "historian", *both, "--metrics-port", str(self.ports["historian"]))
        migrated = await migrating
        assert migrated.returncode == 0, migrated.stderr
        admin = ("users", "add", "ops", "--role", "admin", "--password-stdin")
        making = asyncio.create_task(asyncio.to_thread(self.facmon.run, *admin, stdin=PASSWORD))
        sla = ["--sla", str(self.path("sla.yaml"))]
        self._start("rules", "rules", *both, *sla, "--metrics-port", str(self.ports["rules"]))
        self._start("notifier", "notifier", *both, "--metrics-port", str(self.ports["notifier"]))
        made = await making
        assert made.returncode == 0, made.stderr
        # The API refuses a real start without an admin.
        self._start("api", "api", *both, "--port", str(self.api_port))
        await asyncio.gather(*(self._healthy(name) for name in self.ports))
        health = f"http://127.0.0.1:{self.api_port}/api/v1/health"
        await asyncio.to_thread(self.facmon.wait_healthy, self.services["api"], health, START_TIMEOUT_S)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.facmon.stop_all)

    def _start(self, label: str, *args: str) -> None:
        self.services[label] = self.facmon.start(label, *args)

    async def _healthy(self, label: str) -> None:
        service = label.removesuffix("-b")
        started, port = self.services[label], self.ports[label]
        await asyncio.to_thread(wait_healthy, self.facmon, started, service, port, START_TIMEOUT_S)

    def report(self, site: str, month: str) -> dict[str, Any]:
        """`facmon report kpi --month` as JSON, run as its own process like an operator would."""
        site_file = self.path("site-a.yaml" if site == self.site_a else "site-b.yaml")
        done = self.facmon.run("report", "kpi", "--site", str(site_file), "--month", month, "--format", "json")
        assert done.returncode == 0, done.stderr
        report: dict[str, Any] = json.loads(done.stdout)
        return report

    def keep_records(self) -> None:
        """InfluxDB's series of both estates as JSON files beside the database (the test's database is dropped)."""
        measurements = ("events", "elevator", "fire_panel", "fire_panel_point", "fire_intact", "gate")
        for name in measurements:
            query = f'SELECT * FROM "{name}" WHERE site =~ /^{self.prefix}-/ GROUP BY *'
            answer = httpx.get(
                f"{self.influxd.url}/query", params={"db": self.influx_db, "q": query, "epoch": "ns"}, timeout=60
            )
            self.path(f"influx-{name}.json").write_text(answer.text)

    def outputs(self) -> str:
        """The last lines of every process's log, for a failure message."""
        return "\n".join(f"--- {s.name} ---\n{s.output(1500)}" for s in self.facmon.started)


async def signed_in(base_url: str, username: str, password: str = PASSWORD) -> httpx.AsyncClient:
    """An API client with `username`'s bearer token."""
    client = httpx.AsyncClient(base_url=base_url, timeout=20)
    login = await client.post("/auth/login", json={"username": username, "password": password})
    assert login.status_code == 200, login.text
    client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
    return client


async def add_users(admin: httpx.AsyncClient) -> None:
    """The engineer and the elevator and fire technicians of estate A, as the admin makes them."""
    people = [("eng", "engineer", None), *((tid, "technician", tid) for tid in TECHNICIANS)]
    for username, role, technician in people:
        body = {"username": username, "role": role, "password": PASSWORD, "technician": technician}
        made = await admin.post("/users", json=body)
        assert made.status_code == 201, made.text
