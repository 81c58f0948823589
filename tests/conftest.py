"""Real services for the tests: Mosquitto and influxd on free loopback ports, in temporary folders; a real SQLite
database file per test at the newest schema, a fake clock and event makers.

The session fixtures are shared; a test that stops a service (outage tests) asks for its own instance through the
`*_factory` fixtures so it never disturbs the others. Every process is stopped at the end.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import Engine

from facmon.kernel.clock import FakeClock
from facmon.kernel.daemons import ChildService, Influxd, Mosquitto, free_port
from facmon.kernel.db import make_engine
from facmon.kernel.model import Event, EventType
from facmon.shell.migrations.schema import create_schema
from tests.notifier.support import Inbox
from tests.rules.support import MakeEvent, elevator


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'facmon.db'}")
    create_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_event(clock: FakeClock) -> MakeEvent:
    """An event at the fake clock's current time: make_event("fault_raised", "2", device="e2")."""

    def make(type_: str, code: str | None = None, **ref: str) -> Event:
        return Event(ref=elevator(**ref), ts=clock.now(), type=EventType(type_), code=code)

    return make


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    service = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    service.start()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influxd]:
    service = Influxd(tmp_path_factory.mktemp("influxd"))
    service.start()
    yield service
    service.stop()


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[Callable[[], Mosquitto]]:
    started: list[ChildService] = []

    def make() -> Mosquitto:
        service = Mosquitto(tmp_path / f"mosquitto-{len(started)}")
        service.start()
        started.append(service)
        return service

    yield make
    for service in started:
        service.stop()


@pytest.fixture
def influxd_factory(tmp_path: Path) -> Iterator[Callable[[], Influxd]]:
    started: list[ChildService] = []

    def make() -> Influxd:
        service = Influxd(tmp_path / f"influxd-{len(started)}")
        service.start()
        started.append(service)
        return service

    yield make
    for service in started:
        service.stop()


@pytest.fixture
def influx_db(influxd: Influxd) -> Iterator[str]:
    """A fresh database on the shared influxd, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    httpx.post(f"{influxd.url}/query", data={"q": f'CREATE DATABASE "{name}"'}).raise_for_status()
    yield name
    httpx.post(f"{influxd.url}/query", data={"q": f'DROP DATABASE "{name}"'})


def influxql(url: str, db: str, query: str) -> list[dict[str, object]]:
    """Run an InfluxQL query; the series of the first statement (empty list when there are none)."""
    resp = httpx.get(f"{url}/query", params={"db": db, "q": query, "epoch": "ns"}, timeout=10)
    resp.raise_for_status()
    result = resp.json()["results"][0]
    if "error" in result:
        raise AssertionError(f"InfluxQL error: {result['error']}")
    series: list[dict[str, object]] = result.get("series", [])
    return series


@pytest.fixture
def topic_prefix() -> str:
    """A unique site id per test, so tests on the shared broker never see each other's messages."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    """A real SMTP server (aiosmtpd) on a free port; its inbox keeps every message."""
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()
