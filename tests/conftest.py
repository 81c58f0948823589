"""Real services for the tests: Mosquitto and influxd on free loopback ports, in temporary folders; a real SQLite
database file per test at the newest schema, a fake clock and event makers.

The session fixtures are shared; a test that stops a service (outage tests) asks for its own instance through the
`*_factory` fixtures so it never disturbs the others. Every process is stopped at the end.

Every test is also held to leave nothing running: an asyncio task still pending on its event loop once its
fixtures are torn down, or a child process it started that is still alive then, fails it (`_no_leaks`).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import signal
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import httpx
import pytest
from _pytest.fixtures import FixtureDef, SubRequest
from aiosmtpd.controller import Controller
from pytest_asyncio import is_async_test
from sqlalchemy import Engine

from facmon.kernel.clock import FakeClock
from facmon.kernel.daemons import ChildService, Influxd, Mosquitto, Postgres, free_port
from facmon.kernel.db import make_engine
from facmon.kernel.model import Event, EventType
from facmon.shell.migrations.schema import create_schema
from tests.databases import Databases
from tests.notifier.support import Inbox
from tests.rules.support import MakeEvent, elevator
from tests.support import children_of

# Child processes started by fixtures wider than a test (session, package, module): shared, so no test's leak.
_SHARED_PIDS: set[int] = set()
# How long a child the test told to stop may take to go before it counts as left running.
_EXIT_GRACE_S = 2.0


def _children() -> dict[int, str]:
    """This process's live children (zombies excluded), pid -> command line."""
    return children_of(os.getpid())


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: FixtureDef[object], request: SubRequest) -> Generator[None, object, object]:
    if fixturedef.scope == "function":
        return (yield)
    before = _children().keys()
    try:
        return (yield)
    finally:
        _SHARED_PIDS.update(_children().keys() - before)


def _pending_tasks(loop: asyncio.AbstractEventLoop) -> list[str]:
    lines = []
    for task in sorted(asyncio.all_tasks(loop), key=lambda t: t.get_name()):
        coro = task.get_coro()
        frames = task.get_stack(limit=1)
        at = f" at {frames[0].f_code.co_filename}:{frames[0].f_lineno}" if frames else ""
        lines.append(f"task {task.get_name()}: {getattr(coro, '__qualname__', coro)}{at}")
    return lines


def _left_running(before: set[int]) -> list[str]:
    deadline = time.monotonic() + _EXIT_GRACE_S
    while (left := {pid: cmd for pid, cmd in _children().items() if pid not in before | _SHARED_PIDS}) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.05)
    for pid in left:  # so the next test starts clean
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return [f"process {pid}: {cmd}" for pid, cmd in sorted(left.items())]


def _uses_asyncio(item: pytest.Item) -> bool:
    """An async test, or a test with an async fixture: the ones that run on pytest-asyncio's per-test loop."""
    if is_async_test(item):
        return True
    info = getattr(item, "_fixtureinfo", None)
    defs = info.name2fixturedefs.values() if info is not None else ()
    return any(inspect.iscoroutinefunction(d[-1].func) or inspect.isasyncgenfunction(d[-1].func) for d in defs)


@pytest.fixture(autouse=True)
def _no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that leaves an asyncio task pending or a child process running once its fixtures are gone.

    For a test on pytest-asyncio's per-test loop it takes that loop's runner first, so it is torn down after every
    async fixture and before the runner closes the loop (which would cancel what is left without a word). Other
    tests get no loop of ours: Playwright's sync API runs one of its own in this thread. Processes that fixtures of
    a wider scope start (Mosquitto, influxd, a browser) are theirs, not the test's.
    """
    runner: asyncio.Runner | None = None
    if _uses_asyncio(request.node):
        runner = request.getfixturevalue("_function_scoped_runner")
    before = set(_children())
    yield
    leaks = (_pending_tasks(runner.get_loop()) if runner is not None else []) + _left_running(before)
    if leaks:
        pytest.fail("the test left running:\n  " + "\n  ".join(leaks), pytrace=False)


@pytest.fixture(scope="module")
def db_backend(request: pytest.FixtureRequest) -> str:
    """The database of `engine`, `db_url` and `databases`: SQLite, unless the folder runs on both (tests/databases.py).

    PostgreSQL's server and template are asked for here, at module scope, so they start before a test's own
    fixtures (a server started in the middle of a test would count as a process the test left running).
    """
    backend: str = getattr(request, "param", "sqlite")
    if backend == "postgresql":
        request.getfixturevalue("postgres_template")
    return backend


@pytest.fixture
def databases(db_backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Databases]:
    """New databases for this test on `db_backend`, at the newest schema unless asked otherwise; dropped afterwards."""
    made = Databases(db_backend, tmp_path, request)
    yield made
    made.close()


@pytest.fixture(scope="module")
def module_databases(
    db_backend: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Databases]:
    """`databases` for a module's shared database (one that its tests only read)."""
    made = Databases(db_backend, tmp_path_factory.mktemp("databases"), request)
    yield made
    made.close()


@pytest.fixture
def db_url(databases: Databases) -> str:
    """The test's database at the newest schema (a SQLite file, or a PostgreSQL database of its own)."""
    return databases.url()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
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


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    """One PostgreSQL server per test worker; each test that wants a database gets its own (`postgres_engine`)."""
    service = Postgres(tmp_path_factory.mktemp("postgres"))
    service.start()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def postgres_template(postgres: Postgres) -> str:
    """A database at the newest schema, copied for each test (a copy takes a tenth of a second, migrating more)."""
    name = "facmon_template"
    engine = make_engine(postgres.create_database(name))
    create_schema(engine)
    engine.dispose()
    return name


@pytest.fixture
def postgres_engine(postgres: Postgres, postgres_template: str) -> Iterator[Engine]:
    """A database of its own on the shared server, at the newest schema, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    engine = make_engine(postgres.create_database(name, template=postgres_template))
    yield engine
    engine.dispose()
    postgres.drop_database(name)


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
