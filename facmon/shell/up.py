"""`facmon up`: every service for one site on one machine, as tasks of one event loop.

The sum of `facmon gateway`, `historian`, `rules`, `notifier` and `api`, each built by the same composition root
(facmon.shell.compose). Mosquitto and influxd are started as child processes when the settings name no broker or
InfluxDB
(facmon.shell.local). Simulators run only when asked (`--demo` or `--simulate`): a real start never binds a device's
address. On Ctrl-C (or SIGTERM) every task is cancelled, the children are stopped, and the command exits 0.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog

from api.accounts.bootstrap import demo_accounts, demo_banner
from facmon.demo_history.generate import ensure_demo_history
from facmon.estate.site import Site
from facmon.kernel.clock import Clock
from facmon.kernel.health import Service, combined
from facmon.kernel.metrics import Counters
from facmon.shell.compose import ApiService, Composer, Endpoints
from facmon.shell.local import local_services
from facmon.shell.runner import until_signalled
from facmon.shell.settings import Settings
from simulators.scenario import Scenario
from simulators.site import SiteSimulator

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Simulation:
    """The simulators `facmon up` runs in front of the gateway: the demo, or `--simulate`."""

    scenario: Scenario | None = None
    speed: float = 1.0
    seed: int = 0


async def _start_simulators(tg: asyncio.TaskGroup, site: Site, endpoints: Endpoints, simulation: Simulation) -> None:
    simulator = SiteSimulator(
        site,
        scenario=simulation.scenario,
        speed=simulation.speed,
        seed=simulation.seed,
        mqtt=endpoints.mqtt_for(f"devices-{site.id}"),
    )
    running = tg.create_task(simulator.run(), name="simulators")
    # Collectors start once the simulated controllers listen, so the demo opens without false alarms.
    while not simulator.serving.is_set():
        if running.done():
            running.result()
            raise RuntimeError("the simulators could not start")
        await asyncio.sleep(0.02)


async def run_system(
    compose: Composer,
    sites: Sequence[Site],
    *,
    api_host: str = "127.0.0.1",
    api_port: int = 8080,
    simulation: Simulation | None = None,
    on_ready: Callable[[ApiService], None] | None = None,
) -> None:
    """Every service for `sites` until cancelled; outside demo mode only with a good secret key and an admin."""
    if compose.settings.demo:
        # Hashing the demo accounts' passwords takes a few seconds: the devices are watched meanwhile.
        await compose.prepare_database()
        accounts: asyncio.Future[None] = asyncio.ensure_future(compose.check_start(sites))
    else:
        await compose.check_start(sites)
        accounts = asyncio.get_running_loop().create_future()
        accounts.set_result(None)
    api_url = f"http://{api_host}:{api_port}"
    try:
        async with asyncio.TaskGroup() as tg:
            if simulation is not None:
                for site in sites:
                    await _start_simulators(tg, site, compose.endpoints, simulation)
            services: list[Service] = [compose.gateway(site) for site in sites]
            # One machine for these sites: their MQTT sessions carry the sites' names unless FACMON_INSTANCE says.
            instance = compose.settings.instance or "-".join(site.id for site in sites)
            services += [compose.historian(sites, instance), compose.rules(sites, instance=instance)]
            services.append(compose.notifier(sites, api_url))
            others = tuple(services)
            api = compose.api(sites, api_host, api_port, health=lambda: combined([s.health() for s in others]))
            for service in [*services, api]:
                task = tg.create_task(service.run(), name=service.name)
            await api.server.wait_started(task)
            await accounts
            if on_ready is not None:
                on_ready(api)
    finally:
        accounts.cancel()


def banner(site: Site, settings: Settings, endpoints: Endpoints, api: ApiService) -> str:
    lines = [
        f"facmon is up for site {site.id!r} ({sum(1 for _ in site.devices())} devices)",
        f"  API          {api.url}/api/v1/work-orders",
        f"  API docs     {api.url}/docs",
        f"  MQTT broker  {endpoints.mqtt.host}:{endpoints.mqtt.port}  (topics facmon/v1/#)",
        f"  InfluxDB     {endpoints.influx_url}  (database {endpoints.influx_db!r}, InfluxQL)",
        f"  work orders  {endpoints.db_url}",
        f"  state folder {settings.state_dir}",
        f"  phone page   {api.url}/tech",
    ]
    if settings.demo:
        lines.append(demo_banner(demo_accounts([site])))
    lines.append("Press Ctrl-C to stop.")
    return "\n".join(lines)


async def up(
    site: Site,
    settings: Settings,
    *,
    clock: Clock,
    metrics: Counters,
    api_host: str,
    api_port: int,
    simulation: Simulation | None,
    announce: Callable[[str], None],
) -> None:
    """`facmon up`: local services if needed, then the system, until SIGINT/SIGTERM."""
    with local_services(settings, [site], simulators=simulation is not None) as endpoints:
        async with Composer(settings, endpoints, clock=clock, metrics=metrics) as compose:

            def ready(api: ApiService) -> None:
                announce(banner(site, settings, endpoints, api))

            if settings.demo and endpoints.influx_url is not None:
                # The demo estate's past year, on its first start only (facmon.demo_history): its reports,
                # dashboards and KPIs show what a real estate's would from the first minute.
                announce("facmon is starting (the demo's past year is written on the first start, about 30 s) ...")
                engine = await compose.prepare_database()
                await ensure_demo_history(
                    site, engine, endpoints.influx_url, endpoints.influx_db, now=clock.now(), demo=True
                )

            system = run_system(
                compose, [site], api_host=api_host, api_port=api_port, simulation=simulation, on_ready=ready
            )
            if await until_signalled(system):
                announce("stopping ...")
    announce("stopped")
