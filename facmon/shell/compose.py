"""The composition root: every facmon service built from the settings, in one place.

`facmon gateway | historian | rules | notifier | api` each build one service here, and `facmon up` builds all of
them here too, so a service runs the same alone as in the sum. Nothing else constructs a service from settings.

    async with Composer(settings, endpoints, clock=clock, metrics=metrics) as compose:
        await compose.prepare()            # schema, and the checks of a real start
        historian = compose.historian(sites)
        ...

The composer owns what the services share (the work-order database engine, InfluxDB clients, webhook clients) and
closes it when the block ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from types import TracebackType
from typing import Self

from pydantic import SecretStr
from sqlalchemy import Engine

from api.accounts.bootstrap import UnsafeStart, ensure_demo_accounts
from api.accounts.bootstrap import check_real_start as check_accounts
from api.app import create_app
from facmon.estate.site import Site
from facmon.historian.service import Historian
from facmon.kernel.clock import Clock
from facmon.kernel.db import make_engine
from facmon.kernel.health import Check, Health, Service
from facmon.kernel.httpserve import EmbeddedServer, embedded
from facmon.kernel.influx import InfluxSettings
from facmon.kernel.metrics import Counters
from facmon.kernel.mqtt import MqttSettings
from facmon.notifier.base import Channel
from facmon.notifier.channels.config import MqttPushConfig
from facmon.notifier.channels.log import LogChannel
from facmon.notifier.channels.mqtt_push import MqttPushChannel
from facmon.notifier.channels.smtp import SmtpChannel
from facmon.notifier.channels.webhook import WebhookChannel
from facmon.notifier.dispatcher import Dispatcher
from facmon.notifier.queue import Sender
from facmon.notifier.recipients import SiteResolver
from facmon.notifier.service import Notifier
from facmon.notifier.storm import maintenance_windows
from facmon.notifier.tokens import InsecureSecret, check_secret, issue, load_or_create_secret
from facmon.reports.kpi import KpiTargets
from facmon.reports.kpi_data import InfluxReader
from facmon.shell.declared import declared_fields
from facmon.shell.migrations.schema import create_schema
from facmon.shell.settings import Settings
from facmon.workorders.lifecycle import InfluxLifecycleSink
from gateway.site_gateway import SiteGateway
from rules.engine import Rule
from rules.monitors import RulesMonitors
from rules.state_rules import StateRules, load_state_rules
from rules.worker import Broker, RulesWorker


class StartRefused(RuntimeError):
    """A start that must not go ahead (a real start without a good secret key or an admin, ...); says why."""


@dataclass(frozen=True)
class Endpoints:
    """Where the backbone broker, InfluxDB and the work-order database are, with their credentials.

    `mqtt` is how every service of this process reaches the broker (host, credentials, TLS); `service_mqtt` gives a
    service its own login where the broker has one per role (`facmon up`'s generated broker configuration): keys
    `gateway-<site>`, `historian`, `rules`, `notifier`, `devices-<site>`."""

    mqtt: MqttSettings
    influx_url: str | None
    influx_db: str
    db_url: str
    influx_username: str | None = None
    influx_password: str | None = None
    service_mqtt: Mapping[str, MqttSettings] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> Endpoints:
        return cls(
            mqtt=settings.mqtt(),
            influx_url=settings.influx_url,
            influx_db=settings.influx_db,
            db_url=settings.database_url(),
            influx_username=settings.influx_username,
            influx_password=settings.influx_password_text(),
        )

    def mqtt_for(self, service: str) -> MqttSettings:
        """The broker settings of one service: its own login when it has one, else the shared settings."""
        return self.service_mqtt.get(service, self.mqtt)

    def influx(self) -> InfluxSettings | None:
        """The InfluxDB every service of this process talks to, or None when the settings name none."""
        if self.influx_url is None:
            return None
        return InfluxSettings(
            self.influx_url, self.influx_db, username=self.influx_username, password=self.influx_password
        )


class ApiService:
    """The HTTP API on an embedded uvicorn, as a service like the others."""

    name = "api"

    def __init__(self, server: EmbeddedServer) -> None:
        self.server = server
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.server.config.host}:{self.server.config.port}"

    async def run(self) -> None:
        await self.server.serve_until_cancelled()

    def health(self) -> Health:
        listening = self.server.started
        return Health(self.name, (Check("http", listening, "" if listening else "not listening"),))


class RulesService:
    """The rules worker (the event consumer) with its monitors (rules.monitors) started as tasks next to it; one
    service to run and to ask about its health (the worker's checks: the monitors have none of their own)."""

    name = "rules"

    def __init__(self, worker: RulesWorker, monitors: Sequence[Service]) -> None:
        self.worker = worker
        self.monitors = tuple(monitors)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.worker.run(), name="rules-consumer")
            for monitor in self.monitors:
                tg.create_task(monitor.run(), name=monitor.name)

    def health(self) -> Health:
        parts = (self.worker, *self.monitors)
        return Health(self.name, tuple(check for part in parts for check in part.health().checks))


class Composer:
    def __init__(self, settings: Settings, endpoints: Endpoints, *, clock: Clock, metrics: Counters) -> None:
        self.settings = settings
        self.endpoints = endpoints
        self.clock = clock
        self.metrics = metrics
        self._stack = contextlib.AsyncExitStack()
        self._engine: Engine | None = None
        self._ack_secret: bytes | None = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._stack.aclose()

    # --- what the services share -------------------------------------------------------------------------------------

    def engine(self) -> Engine:
        """The work-order database (made once; disposed when the composer closes)."""
        if self._engine is None:
            self.settings.state_dir.mkdir(parents=True, exist_ok=True)  # the default SQLite file lives there
            self._engine = engine = make_engine(self.endpoints.db_url)
            self._stack.callback(engine.dispose)
        return self._engine

    async def prepare_database(self) -> Engine:
        """The engine, with the schema brought to head (safe on every start; `facmon db upgrade` does the same)."""
        engine = self.engine()
        await asyncio.to_thread(create_schema, engine)
        return engine

    async def check_start(self, sites: Sequence[Site]) -> None:
        """Outside demo mode: refuse, naming every problem, to run without a good secret key and an admin, or while a
        demo account keeps its published password. In demo mode the demo accounts are made instead."""
        engine = await self.prepare_database()
        if self.settings.demo:
            await asyncio.to_thread(ensure_demo_accounts, engine, sites, self.clock.now())
            return
        try:
            await asyncio.to_thread(check_accounts, engine, self._secret_text(), sites)
        except UnsafeStart as exc:
            raise StartRefused(f"{exc}\n(to try facmon with demo accounts instead: --demo or FACMON_DEMO=1)") from exc

    def _secret_text(self) -> str | None:
        try:
            return self.settings.secret_key_text()
        except ValueError as exc:
            raise StartRefused(str(exc)) from exc

    def ack_secret(self) -> bytes:
        """The key that signs the one-tap acknowledge links: the configured one, or in demo mode one generated once
        into the state folder (so the notifier and the API of one machine agree on it)."""
        if self._ack_secret is None:
            configured = self._secret_text()
            try:
                if self.settings.demo:
                    self._ack_secret = load_or_create_secret(configured, self.settings.state_dir)
                elif configured is None:
                    raise StartRefused("no secret key: set FACMON_SECRET_KEY or FACMON_SECRET_KEY_FILE")
                else:
                    self._ack_secret = check_secret(configured.encode())
            except InsecureSecret as exc:
                raise StartRefused(f"FACMON_SECRET_KEY: {exc}") from exc
        return self._ack_secret

    def ack_link(self, api_url: str | None) -> Callable[[int, str, datetime], str]:
        """(work order, recipient, now) -> the signed one-tap acknowledge link, on FACMON_PUBLIC_URL or `api_url`."""
        secret = self.ack_secret()
        base = self.settings.public_url or api_url
        if base is None:
            raise StartRefused(
                "set FACMON_PUBLIC_URL to where phones reach the API (e.g. https://facmon.example.com): "
                "alerts carry one-tap acknowledge links to it"
            )
        base = base.rstrip("/")

        def link(work_order_id: int, recipient_id: str, now: datetime) -> str:
            return f"{base}/api/v1/ack/{issue(secret, work_order_id, recipient_id, now=now)}"

        return link

    def influx_reader(self) -> InfluxReader | None:
        influx = self.endpoints.influx()
        if influx is None:
            return None
        reader = InfluxReader(influx)
        self._stack.push_async_callback(reader.aclose)
        return reader

    def lifecycle_sink(self) -> InfluxLifecycleSink | None:
        influx = self.endpoints.influx()
        if influx is None:
            return None
        sink = InfluxLifecycleSink(influx)
        self._stack.push_async_callback(sink.aclose)
        return sink

    # --- the services ------------------------------------------------------------------------------------------------

    def gateway(self, site: Site) -> SiteGateway:
        return SiteGateway(
            site,
            mqtt=self.endpoints.mqtt_for(f"gateway-{site.id}"),
            state_dir=self.settings.state_dir / "gateway",
            clock=self.clock,
            metrics=self.metrics,
            instance=self.settings.instance or None,  # none set: the host name
            replay_window_s=self.settings.outbox_replay_window_s,
        )

    def client_id(self, service: str, instance: str | None = None) -> str:
        """The MQTT client id of a service: stable across restarts, so the broker keeps its persistent session."""
        name = self.settings.instance if instance is None else instance
        return f"facmon-{service}-{name}" if name else f"facmon-{service}"

    def historian(self, sites: Sequence[Site], instance: str | None = None) -> Historian:
        """Stores what the drivers of the devices of `sites` declare, nothing else (facmon.shell.declared)."""
        e = self.endpoints
        influx = e.influx()
        if influx is None:
            raise StartRefused("set FACMON_INFLUX_URL to the InfluxDB to write to (e.g. http://127.0.0.1:8086)")
        return Historian(
            mqtt=replace(e.mqtt_for("historian"), client_id=self.client_id("historian", instance)),
            influx=influx,
            state_dir=self.settings.state_dir / "historian",
            metrics=self.metrics,
            clock=self.clock,
            declared=declared_fields(sites),
            share_group=self.settings.historian_share_group or None,
        )

    def rules(
        self,
        sites: Sequence[Site],
        state_rules: StateRules | None = None,
        instance: str | None = None,
        *,
        event_rules: Sequence[Rule] | None = None,
    ) -> RulesService:
        """The rules worker and its monitors. Needs `prepare_database()` first. `event_rules` and `state_rules`
        default to the library's, with the shipped SLA profiles."""
        login = self.endpoints.mqtt_for("rules")
        broker = Broker(
            login.host,
            login.port,
            self.client_id("rules", instance),
            username=login.username,
            password=login.password,
            tls=login.tls_settings,
            share_group=self.settings.rules_share_group or None,
        )
        rules = load_state_rules() if state_rules is None else state_rules
        engine = self.engine()
        worker = RulesWorker(
            broker,
            engine=engine,
            clock=self.clock,
            metrics=self.metrics,
            rules=event_rules,
            sites=sites,
            state_rules=rules,
            evidence_window=timedelta(seconds=self.settings.arrival_evidence_window_s),
        )
        monitors = RulesMonitors(
            engine,
            self.clock,
            self.metrics,
            broker=broker,
            sites=sites,
            state_rules=rules,
            lifecycle_sink=self.lifecycle_sink(),
        )
        return RulesService(worker, monitors.services())

    def channels(self) -> dict[str, Channel]:
        """The log, MQTT pushes to technicians' phones on the backbone broker, and the configured webhooks and
        e-mail (FACMON_WEBHOOKS, FACMON_SMTP)."""
        login = self.endpoints.mqtt_for("notifier")
        password = None if login.password is None else SecretStr(login.password)
        config = MqttPushConfig(host=login.host, port=login.port, username=login.username, password=password)
        channels: dict[str, Channel] = {
            "log": LogChannel(),
            "mqtt_push": MqttPushChannel(config, tls=login.tls_settings),
        }
        for hook in self.settings.webhooks:
            channel = WebhookChannel(hook, self.clock)
            self._stack.push_async_callback(channel.aclose)
            channels[hook.name] = channel
        if self.settings.smtp is not None:
            channels[self.settings.smtp.name] = SmtpChannel(self.settings.smtp)
        return channels

    def notifier(self, sites: Sequence[Site], api_url: str | None = None) -> Notifier:
        """Needs `prepare_database()` first. `api_url`: where an API of the same process listens, for the links in
        alerts when FACMON_PUBLIC_URL does not say where phones reach it."""
        engine = self.engine()
        channels = self.channels()
        dispatcher = Dispatcher(
            engine,
            self.clock,
            resolver=SiteResolver(sites),
            channels=channels,
            metrics=self.metrics,
            ack_link=self.ack_link(api_url),
            maintenance=[window for site in sites for window in maintenance_windows(site)],
        )
        return Notifier(dispatcher, Sender(engine, channels, self.clock, metrics=self.metrics))

    def api(
        self,
        sites: Sequence[Site],
        host: str,
        port: int,
        *,
        health: Callable[[], Health] | None = None,
        sock: socket.socket | None = None,
    ) -> ApiService:
        """Needs `check_start(sites)` first. `health`: more services to report at /api/v1/health (`facmon up`).
        `sock`: a listening socket to serve (a worker of `facmon api --workers N`) instead of binding host:port."""
        try:
            KpiTargets()  # FACMON_KPI_* read at start, so a bad or retired one stops it here, not each request
        except ValueError as exc:
            raise StartRefused(f"FACMON_KPI_*: {exc}") from exc
        app = create_app(
            sites=sites,
            engine=self.engine(),
            metrics=self.metrics,
            influx=self.influx_reader(),
            ack_secret=self.ack_secret(),
            cors_origins=self.settings.cors_origins,
            max_body_bytes=self.settings.max_body_bytes,
            services_health=health,
            database_concurrency=self.settings.api_database_concurrency,
        )
        return ApiService(embedded(app, host, port, sock))
