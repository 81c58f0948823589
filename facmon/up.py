"""`facmon up`: the whole system for one site on one machine.

Simulators, gateway, historian, rules and API run as tasks of one event loop. Mosquitto and influxd are started as
child processes when no external broker or database is configured, with their data under the state folder.
On Ctrl-C (or SIGTERM) every task is cancelled, the children are stopped, and the command exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import structlog

from api.app import create_app
from facmon.accounts.bootstrap import DemoAccount, check_real_start, demo_accounts, demo_banner, ensure_demo_accounts
from facmon.clock import Clock
from facmon.httpserve import embedded
from facmon.metrics import Counters
from facmon.services import ChildService, Influxd, Mosquitto
from facmon.settings import Settings
from facmon.site import Site
from gateway.site_gateway import SiteGateway
from historian.service import Historian
from notifier.base import Channel
from notifier.channels.config import MqttPushConfig, SmtpConfig, WebhookConfig
from notifier.channels.mqtt_push import MqttPushChannel
from notifier.channels.smtp import SmtpChannel
from notifier.channels.webhook import WebhookChannel
from notifier.dispatcher import Dispatcher, LogChannel, SiteResolver
from notifier.queue import Sender
from notifier.storm import maintenance_windows
from notifier.tokens import issue, load_or_create_secret
from rules.db import create_schema, make_engine
from rules.kpi_data import InfluxReader
from rules.lifecycle import InfluxLifecycleSink
from rules.worker import RulesWorker
from simulators.scenario import Scenario
from simulators.site import SiteSimulator

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Endpoints:
    mqtt_host: str
    mqtt_port: int
    influx_url: str
    influx_db: str
    db_url: str


@contextlib.contextmanager
def local_services(settings: Settings, state_dir: Path) -> Iterator[Endpoints]:
    """Endpoints from the settings, starting a local Mosquitto / influxd for whichever is not configured."""
    started: list[ChildService] = []
    try:
        if settings.mqtt_host is None:
            broker = Mosquitto(state_dir / "mosquitto")
            broker.start()
            started.append(broker)
            mqtt_host, mqtt_port = "127.0.0.1", broker.port
        else:
            mqtt_host, mqtt_port = settings.mqtt_host, settings.mqtt_port
        if settings.influx_url is None:
            influx = Influxd(state_dir / "influxdb")
            influx.start()
            started.append(influx)
            influx_url = influx.url
        else:
            influx_url = settings.influx_url
        yield Endpoints(mqtt_host, mqtt_port, influx_url, settings.influx_db, settings.database_url())
    finally:
        for service in reversed(started):
            service.stop()


async def run_system(
    site: Site,
    endpoints: Endpoints,
    *,
    state_dir: Path,
    clock: Clock,
    metrics: Counters,
    api_host: str = "127.0.0.1",
    api_port: int = 8080,
    simulate: bool = True,
    scenario: Scenario | None = None,
    speed: float = 1.0,
    seed: int = 0,
    on_ready: Callable[[], None] | None = None,
    secret_key: str | None = None,
    public_url: str | None = None,
    webhooks: Sequence[WebhookConfig] = (),
    smtp: SmtpConfig | None = None,
    cors_origins: Sequence[str] = (),
    max_body_bytes: int = 1_048_576,
    demo: bool = False,
) -> None:
    """Run every component until cancelled; outside `demo`, only with a good secret key and accounts."""
    engine = make_engine(endpoints.db_url)
    await asyncio.to_thread(create_schema, engine)
    # Signs the one-tap acknowledge links in alerts; the links point at the API (or where phones reach it).
    accounts: asyncio.Future[list[DemoAccount]] | None = None
    if demo:
        ack_secret = load_or_create_secret(secret_key, state_dir)
        # Hashing their passwords takes a moment; the devices are watched meanwhile, and "ready" waits for it.
        accounts = asyncio.ensure_future(asyncio.to_thread(ensure_demo_accounts, engine, [site], clock.now()))
    else:
        await asyncio.to_thread(check_real_start, engine, secret_key, [site])
        assert secret_key is not None, "check_real_start refuses a missing key"
        ack_secret = secret_key.encode()
    links_base = (public_url or f"http://{api_host}:{api_port}").rstrip("/")

    def ack_link(work_order_id: int, recipient_id: str, now: datetime) -> str:
        return f"{links_base}/api/v1/ack/{issue(ack_secret, work_order_id, recipient_id, now=now)}"

    # The KPI page reads the fire intact rate back from InfluxDB.
    influx_reader = InfluxReader(endpoints.influx_url, endpoints.influx_db)
    app = create_app(
        sites=[site],
        engine=engine,
        metrics=metrics,
        influx=influx_reader,
        ack_secret=ack_secret,
        cors_origins=cors_origins,
        max_body_bytes=max_body_bytes,
    )
    server = embedded(app, api_host, api_port)
    # Work-order transitions and breaches go to InfluxDB for the dashboards.
    lifecycle_sink = InfluxLifecycleSink(endpoints.influx_url, endpoints.influx_db)
    hooks = [WebhookChannel(hook, clock) for hook in webhooks]
    try:
        async with asyncio.TaskGroup() as tg:
            if simulate:
                simulator = SiteSimulator(
                    site,
                    scenario=scenario,
                    speed=speed,
                    seed=seed,
                    mqtt_host=endpoints.mqtt_host,
                    mqtt_port=endpoints.mqtt_port,
                )
                simulators = tg.create_task(simulator.run(), name="simulators")
                # Collectors start once the simulated controllers listen, so the demo opens without false alarms.
                while not simulator.serving.is_set():
                    if simulators.done():
                        raise RuntimeError("the simulators could not start")
                    await asyncio.sleep(0.02)
            gateway = SiteGateway(
                site,
                mqtt_host=endpoints.mqtt_host,
                mqtt_port=endpoints.mqtt_port,
                state_dir=state_dir / "gateway",
                clock=clock,
                metrics=metrics,
            )
            tg.create_task(gateway.run(), name="gateway")
            historian = Historian(
                mqtt_host=endpoints.mqtt_host,
                mqtt_port=endpoints.mqtt_port,
                client_id=f"facmon-historian-{site.id}",
                influx_url=endpoints.influx_url,
                db=endpoints.influx_db,
                state_dir=state_dir / "historian",
                metrics=metrics,
            )
            tg.create_task(historian.run(), name="historian")
            rules = RulesWorker(
                mqtt_host=endpoints.mqtt_host,
                mqtt_port=endpoints.mqtt_port,
                client_id=f"facmon-rules-{site.id}",
                engine=engine,
                clock=clock,
                metrics=metrics,
                lifecycle_sink=lifecycle_sink,
                sites=[site],
            )
            tg.create_task(rules.run(), name="rules")
            # Alerts: escalation steps on the work orders' timelines and a durable queue, delivered to the log and
            # as MQTT pushes on the local broker (facmon/v1/<site>/push/<recipient>); the seam is the channel map.
            channels: dict[str, Channel] = {
                "log": LogChannel(),
                "mqtt_push": MqttPushChannel(MqttPushConfig(host=endpoints.mqtt_host, port=endpoints.mqtt_port)),
            }
            # Configured channels: chat-group webhooks and e-mail to each recipient's address.
            channels.update((hook.name, hook_channel) for hook, hook_channel in zip(webhooks, hooks, strict=True))
            if smtp is not None:
                channels[smtp.name] = SmtpChannel(smtp)
            dispatcher = Dispatcher(
                engine,
                clock,
                resolver=SiteResolver([site]),
                channels=channels,
                metrics=metrics,
                ack_link=ack_link,
                maintenance=maintenance_windows(site),
            )
            tg.create_task(dispatcher.run(), name="notifier-dispatcher")
            tg.create_task(Sender(engine, channels, clock, metrics=metrics).run(), name="notifier-sender")
            api_task = tg.create_task(server.serve_until_cancelled(), name="api")
            while not server.started:
                if api_task.done():
                    raise RuntimeError(f"the API could not start on {api_host}:{api_port}")
                await asyncio.sleep(0.05)
            if accounts is not None:
                await accounts
            if on_ready is not None:
                on_ready()
    finally:
        await lifecycle_sink.aclose()
        for hook_channel in hooks:
            await hook_channel.aclose()
        await influx_reader.aclose()
        engine.dispose()


async def up(
    site: Site,
    settings: Settings,
    *,
    clock: Clock,
    metrics: Counters,
    api_host: str,
    api_port: int,
    scenario: Scenario | None,
    speed: float,
    seed: int,
    announce: Callable[[str], None],
) -> None:
    """`facmon up`: local services if needed, then the system, until SIGINT/SIGTERM."""
    state_dir = settings.state_dir
    state_dir.mkdir(parents=True, exist_ok=True)
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    stopping = False

    def stop() -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            announce("stopping ...")
            main.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    with local_services(settings, state_dir) as endpoints:

        def ready() -> None:
            announce(
                "\n".join(
                    [
                        f"facmon is up for site {site.id!r} ({sum(1 for _ in site.devices())} devices)",
                        f"  API          http://{api_host}:{api_port}/api/v1/work-orders",
                        f"  API docs     http://{api_host}:{api_port}/docs",
                        f"  MQTT broker  {endpoints.mqtt_host}:{endpoints.mqtt_port}  (topics facmon/v1/#)",
                        f"  InfluxDB     {endpoints.influx_url}  (database {endpoints.influx_db!r}, InfluxQL)",
                        f"  work orders  {endpoints.db_url}",
                        f"  state folder {state_dir.resolve()}",
                        f"  phone page   http://{api_host}:{api_port}/tech",
                        *([demo_banner(demo_accounts([site]))] if settings.demo else []),
                        "Press Ctrl-C to stop.",
                    ]
                )
            )

        with contextlib.suppress(asyncio.CancelledError):
            await run_system(
                site,
                endpoints,
                state_dir=state_dir,
                clock=clock,
                metrics=metrics,
                api_host=api_host,
                api_port=api_port,
                scenario=scenario,
                speed=speed,
                seed=seed,
                on_ready=ready,
                secret_key=settings.secret_key_text(),
                demo=settings.demo,
                public_url=settings.public_url,
                webhooks=settings.webhooks,
                smtp=settings.smtp,
                cors_origins=settings.cors_origins,
                max_body_bytes=settings.max_body_bytes,
            )
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.remove_signal_handler(sig)
    announce("stopped")
