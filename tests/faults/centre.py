"""A centre run side by side, for the combined test: one Mosquitto 2 (persistence on), one influxd and one real
PostgreSQL database (migrated by `facmon db upgrade`), a webhook receiver, a gateway for an estate of `CAMERAS`
cameras, and the centre's services as separate processes started through the CLI: `RULES` rules workers in one MQTT 5
share group, `HISTORIANS` historians and `NOTIFIERS` notifiers, each with an instance name of its own
(FACMON_INSTANCE), so a process started again has its MQTT session back.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg
import yaml

from facmon.kernel.daemons import Influxd, Mosquitto, Postgres, free_port
from tests.faults.estate import Webhook
from tests.system.processes import FacmonProcesses, Started
from tests.system.topology import service_env, wait_healthy

CAMERAS = 200
BUILDINGS = 20
RULES = ("r1", "r2", "r3")
HISTORIANS = ("h1", "h2")
NOTIFIERS = ("n1", "n2")
# The camera driver's alarms (collectors/mqtt/drivers/camera_a) that open a work order, and their condition codes.
ALARMS = {
    "videoloss": "video_loss",
    "shelteralarm": "tamper",
    "diskfull": "storage_full",
    "diskerror": "storage_failed",
    "recordexception": "recording_stopped",
}


def _site(site_id: str) -> dict[str, Any]:
    """`CAMERAS` cameras in `BUILDINGS` buildings, and a security technician on call for them every week."""
    per = CAMERAS // BUILDINGS
    buildings = [
        {
            "id": f"b{b}",
            "devices": [{"id": f"c{n}", "kind": "camera", "model": "camera-a"} for n in range(b * per, (b + 1) * per)],
        }
        for b in range(BUILDINGS)
    ]
    technician = {"id": "zhou", "name": "Zhou Min", "phone": "13800000002", "disciplines": ["security"]}
    rota = {"technicians": ["zhou"], "every": "1w", "handoff": "08:30", "start": "2026-01-05"}
    return {"site": {"id": site_id}, "technicians": [technician], "on_call": {"security": rota}, "buildings": buildings}


class Centre:
    """The running centre; `async with` starts it, and stops every process and daemon it started."""

    def __init__(self, workdir: Path, postgres: Postgres) -> None:
        self.workdir = workdir
        self.site_id = f"s{uuid.uuid4().hex[:8]}"
        self.mosquitto = Mosquitto(workdir / "mosquitto")
        self.influxd = Influxd(workdir / "influxd")
        self.postgres = postgres
        self.database = f"centre_{uuid.uuid4().hex[:12]}"
        self.db_url = ""
        self.webhook = Webhook()
        names = ["gateway", *RULES, *HISTORIANS, *NOTIFIERS]
        self.ports = {name: free_port() for name in names}
        self.services: dict[str, Started] = {}
        self.restarts: dict[str, int] = dict.fromkeys(names, 0)
        self._facmon: dict[str, FacmonProcesses] = {}

    @staticmethod
    def service(name: str) -> str:
        """The facmon command of a process: r1 -> rules, h1 -> historian, n1 -> notifier."""
        return {"r": "rules", "h": "historian", "n": "notifier"}.get(name[0], name) if name != "gateway" else name

    async def __aenter__(self) -> Centre:
        try:
            return await self._start()
        except BaseException:
            # A start that fails half way stops what it started, so no process outlives the failed test.
            await self.__aexit__(None, None, None)
            raise

    async def _start(self) -> Centre:
        (self.workdir / "site.yaml").write_text(yaml.safe_dump(_site(self.site_id), sort_keys=False))
        await asyncio.to_thread(self._start_daemons)
        await self.webhook.start()
        env = service_env(
            self.workdir,
            mqtt_port=self.mosquitto.port,
            influx_url=self.influxd.url,
            influx_db="facmon",
            public_url=f"http://127.0.0.1:{free_port()}",
            webhooks=[{"url": self.webhook.url}],
        ) | {"FACMON_DB_URL": self.db_url, "FACMON_RULES_SHARE_GROUP": "rules"}
        for name in self.ports:
            own = {"FACMON_INSTANCE": name}
            if name in HISTORIANS:  # each historian with its buffer in a state folder of its own
                own |= {"FACMON_HISTORIAN_SHARE_GROUP": "historians", "FACMON_STATE_DIR": str(self.workdir / name)}
            self._facmon[name] = FacmonProcesses(self.workdir, env | own)
        migrated = await asyncio.to_thread(self._facmon["gateway"].run, "db", "upgrade")
        assert migrated.returncode == 0, migrated.stderr
        for name in self.ports:
            self._launch(name)
        await asyncio.gather(*(self.healthy(name) for name in self.ports))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for facmon in self._facmon.values():
            with contextlib.suppress(Exception):
                await asyncio.to_thread(facmon.stop_all)
        await self.webhook.stop()
        await asyncio.to_thread(self.influxd.stop)
        await asyncio.to_thread(self.mosquitto.stop)
        await asyncio.to_thread(self.postgres.drop_database, self.database)

    def _start_daemons(self) -> None:
        self.mosquitto.start()
        self.influxd.start()
        httpx.post(f"{self.influxd.url}/query", data={"q": 'CREATE DATABASE "facmon"'}, timeout=10).raise_for_status()
        self.db_url = self.postgres.create_database(self.database)

    def _launch(self, name: str) -> Started:
        label = name if self.restarts[name] == 0 else f"{name}-{self.restarts[name]}"
        site = str(self.workdir / "site.yaml")
        args = [self.service(name), "--site", site, "--metrics-port", str(self.ports[name])]
        self.services[name] = self._facmon[name].start(label, *args)
        return self.services[name]

    async def healthy(self, name: str) -> None:
        facmon, started = self._facmon[name], self.services[name]
        await asyncio.to_thread(wait_healthy, facmon, started, self.service(name), self.ports[name], 120.0)

    async def kill(self, name: str) -> None:
        """SIGKILL a process: no clean-up runs, what it held unacknowledged stays with the broker."""
        await asyncio.to_thread(self._facmon[name].kill, self.services[name])

    async def start(self, name: str) -> None:
        """Start a process again under its own instance name (its MQTT session back), and wait for its health."""
        self.restarts[name] += 1
        self._launch(name)
        await self.healthy(name)

    # --- what the stores hold ----------------------------------------------------------------------------------------

    def _sql(self, query: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.db_url.replace("postgresql+psycopg", "postgresql")) as connection:
            return list(connection.execute(query.encode()).fetchall())

    def fault_orders(self) -> list[tuple[str, str, int]]:
        """(device, fault, occurrences) of every camera fault work order."""
        codes = ", ".join(f"'{code}'" for code in ALARMS.values())
        return [
            (d, f, n)
            for d, f, n in self._sql(f"SELECT device, fault, occurrences FROM work_orders WHERE fault IN ({codes})")
        ]

    def alerted_orders(self) -> set[int]:
        """The work orders whose first alert (the on-call step) was sent, alone, grouped or in a digest."""
        rows = self._sql(
            "SELECT work_order_id FROM notification_steps WHERE step LIKE 'on_call%' AND outcome IN ('sent', 'digest')"
        )
        return {row[0] for row in rows}

    def digests(self) -> int:
        """How many on-call steps went out in a digest (storm control's rate limit reached)."""
        where = "step LIKE 'on_call%' AND outcome = 'digest'"
        return int(self._sql(f"SELECT count(*) FROM notification_steps WHERE {where}")[0][0])

    def queued_webhooks(self) -> list[str]:
        return [row[0] for row in self._sql("SELECT key FROM deliveries WHERE channel = 'webhook'")]

    def stored_faults(self) -> set[tuple[str, str]]:
        """(device, code) of the fault_raised events InfluxDB holds (an empty set while it does not answer)."""
        where = f"site = '{self.site_id}' AND type = 'fault_raised'"
        query = f"SELECT count(event_id) FROM events WHERE {where} GROUP BY device, code"
        try:
            answer = httpx.get(f"{self.influxd.url}/query", params={"db": "facmon", "q": query}, timeout=10).json()
        except (httpx.HTTPError, ValueError):
            return set()
        series = answer["results"][0].get("series", [])
        return {(s["tags"]["device"], s["tags"]["code"]) for s in series}

    def outputs(self) -> str:
        """The last lines of every process's log, for a failure message."""
        return "\n".join(f"--- {s.name} ---\n{s.output(1500)}" for f in self._facmon.values() for s in f.started)
