"""An estate run as users deploy it, for fault injection: its own Mosquitto (persistence on) and influxd on free
ports, a real SQLite work-order database, a webhook receiver that can go away and come back, and every facmon service
its own process started through the CLI in a non-demo configuration.

The site has `ELEVATORS` main cars, each in a building of its own (so storm control never folds their alerts into
one), polled every half second from `facmon simulate`, and `BARRIERS` gate barriers whose vendor messages the load
generator (tests/faults/load.py) publishes. The simulator gets a site file of the elevators only, so the barriers'
heartbeats in InfluxDB are the load generator's and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from facmon.kernel.daemons import Influxd, Mosquitto, free_port
from tests.notifier.support import Receiver
from tests.system.processes import FacmonProcesses, Started
from tests.system.topology import PROBED, on_call_elevator_technician, service_args, service_env, wait_healthy

ELEVATORS = 3
BARRIERS = 3
SERVICES = (*PROBED, "simulate")
# systemd's Restart=on-failure for a service that exits on its own; sooner than the units' RestartSec=5, so that a
# restart falls within a case's few seconds of load.
RESTART_AFTER_S = 1.0


class Webhook:
    """A real HTTP receiver on a fixed free port that can be taken down (connection refused) and brought back."""

    def __init__(self) -> None:
        self.receiver = Receiver(port=free_port())
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return self.receiver.url

    async def start(self) -> None:
        self.receiver.closing = asyncio.Event()
        self._server = await asyncio.start_server(self.receiver._handle, "127.0.0.1", self.receiver.port)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        self.receiver.closing.set()
        await asyncio.gather(*self.receiver.handlers, return_exceptions=True)
        await server.wait_closed()

    def keys(self) -> list[str]:
        """The Idempotency-Key of every request received, in order, duplicates included."""
        return [r.headers.get("idempotency-key", "") for r in self.receiver.requests]


def _site(site_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The site file for the services, and the one for the simulator (its elevators only)."""
    elevators = [
        {
            "id": f"e{n}",
            "kind": "elevator",
            "model": "elev-gb-a",
            "role": "main",
            "address": {"host": "127.0.0.1", "port": free_port(), "unit": 1},
            "poll_interval_s": 0.5,
        }
        for n in range(1, ELEVATORS + 1)
    ]
    buildings = [{"id": f"b{n}", "devices": [car]} for n, car in enumerate(elevators, start=1)]
    barriers = [{"id": f"g{n}", "kind": "gate", "model": "barrier-a"} for n in range(1, BARRIERS + 1)]
    site = {"site": {"id": site_id}, **on_call_elevator_technician()}
    full = site | {"buildings": [*buildings[:-1], buildings[-1] | {"devices": [elevators[-1], *barriers]}]}
    return full, site | {"buildings": buildings}


class Estate:
    """The running system of one fault case; `async with` starts it and stops every process it started."""

    def __init__(self, workdir: Path, site_id: str) -> None:
        self.workdir = workdir
        self.site_id = site_id
        self.mosquitto = Mosquitto(workdir / "mosquitto")
        self.influxd = Influxd(workdir / "influxd")
        self.influx_db = "facmon"
        self.webhook = Webhook()
        self.ports = {name: free_port() for name in PROBED}
        self.state_dir = workdir / "state"
        self.services: dict[str, Started] = {}
        self.restarts: dict[str, int] = dict.fromkeys(SERVICES, 0)
        # Services a case stopped on purpose (the supervisor leaves them down), and the ones that exited on their own
        # and were started again by the supervisor.
        self._held: set[str] = set()
        self.supervised: list[str] = []
        self._supervisor: asyncio.Task[None] | None = None
        self._facmon: FacmonProcesses | None = None

    @property
    def facmon(self) -> FacmonProcesses:
        assert self._facmon is not None, "the estate is not running"
        return self._facmon

    @property
    def database(self) -> Path:
        return self.state_dir / "facmon.db"

    async def __aenter__(self) -> Estate:
        try:
            return await self._start()
        except BaseException:
            # A start that fails half way (a service that could not bind its port, say) stops what it started, so
            # no process outlives the test that failed.
            await self.__aexit__(None, None, None)
            raise

    async def _start(self) -> Estate:
        full, simulated = _site(self.site_id)
        (self.workdir / "site.yaml").write_text(yaml.safe_dump(full, sort_keys=False))
        (self.workdir / "sim-site.yaml").write_text(yaml.safe_dump(simulated, sort_keys=False))
        await asyncio.to_thread(self._start_daemons)
        await self.webhook.start()
        env = service_env(
            self.workdir,
            mqtt_port=self.mosquitto.port,
            influx_url=self.influxd.url,
            influx_db=self.influx_db,
            public_url=f"http://127.0.0.1:{free_port()}",
            webhooks=[{"url": self.webhook.url}],
        )
        self._facmon = FacmonProcesses(self.workdir, env)
        # The schema first for the two services that share the database (as deploy/systemd does before their units);
        # the others start meanwhile.
        migrating = asyncio.create_task(asyncio.to_thread(self.facmon.run, "db", "upgrade"))
        for name in ("simulate", "gateway", "historian"):
            self._launch(name)
        migrated = await migrating
        assert migrated.returncode == 0, migrated.stderr
        for name in ("rules", "notifier"):
            self._launch(name)
        await asyncio.gather(*(self.healthy(name) for name in PROBED))
        self._supervisor = asyncio.create_task(self._supervise())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.facmon.stop_all)
        await self.webhook.stop()
        await asyncio.to_thread(self.influxd.stop)
        await asyncio.to_thread(self.mosquitto.stop)

    def _start_daemons(self) -> None:
        self.mosquitto.start()
        self.influxd.start()
        create = httpx.post(f"{self.influxd.url}/query", data={"q": f'CREATE DATABASE "{self.influx_db}"'}, timeout=10)
        create.raise_for_status()

    def _launch(self, name: str) -> Started:
        restarts = self.restarts[name]
        label = name if restarts == 0 else f"{name}-{restarts}"
        site = self.workdir / ("sim-site.yaml" if name == "simulate" else "site.yaml")
        args = ["--site", str(site)] if name == "simulate" else service_args(name, site, self.ports)
        self.services[name] = self.facmon.start(label, name, *args)
        return self.services[name]

    async def healthy(self, name: str) -> None:
        await asyncio.to_thread(wait_healthy, self.facmon, self.services[name], name, self.ports[name])

    # --- faults ------------------------------------------------------------------------------------------------------

    async def kill(self, name: str) -> None:
        """SIGKILL a facmon service (no clean-up runs); it stays down until `start`."""
        self._held.add(name)
        await asyncio.to_thread(self.facmon.kill, self.services[name])

    async def stop(self, name: str) -> None:
        """SIGTERM a facmon service, as systemd stops it; it stays down until `start`."""
        self._held.add(name)
        await asyncio.to_thread(self.facmon.stop, self.services[name])

    async def start(self, name: str, *, wait: bool = True) -> None:
        """Start a service again with the same command line, state folder and ports."""
        self.restarts[name] += 1
        self._launch(name)
        self._held.discard(name)
        if wait and name in PROBED:
            await self.healthy(name)

    async def _supervise(self) -> None:
        """What systemd's Restart=on-failure does: start again, RESTART_AFTER_S later, a service that exited."""
        exited: dict[str, float] = {}
        while True:  # polling real processes
            now = time.monotonic()
            for name, started in self.services.items():
                if name in self._held or started.proc.poll() is None:
                    exited.pop(name, None)
                elif now - exited.setdefault(name, now) >= RESTART_AFTER_S:
                    exited.pop(name)
                    self.supervised.append(name)
                    await self.start(name, wait=False)
            await asyncio.sleep(0.1)

    async def kill_broker(self) -> None:
        """SIGKILL Mosquitto: what it had not saved yet (autosave every second) is gone."""
        await asyncio.to_thread(self.mosquitto.kill)

    async def start_broker(self) -> None:
        await asyncio.to_thread(self.mosquitto.start)

    async def stop_influxd(self) -> None:
        await asyncio.to_thread(self.influxd.stop)

    async def start_influxd(self) -> None:
        await asyncio.to_thread(self.influxd.start)

    def outputs(self) -> str:
        """The last lines of every process's log, for a failure message."""
        return "\n".join(f"--- {s.name} ---\n{s.output(1500)}" for s in self.facmon.started)
