from __future__ import annotations

import socket

import httpx
from sqlalchemy import Engine, text

from facmon.kernel.daemons import Influxd, Mosquitto, Postgres


def test_mosquitto_accepts_connections(mosquitto: Mosquitto) -> None:
    with socket.create_connection(("127.0.0.1", mosquitto.port), timeout=2):
        pass


def test_influxd_answers_ping_and_queries(influxd: Influxd, influx_db: str) -> None:
    assert httpx.get(f"{influxd.url}/ping").status_code == 204
    body = httpx.get(f"{influxd.url}/query", params={"q": "SHOW DATABASES"}).json()
    names = [row[0] for row in body["results"][0]["series"][0]["values"]]
    assert influx_db in names


def test_restart_on_same_port_keeps_data(influxd_factory) -> None:  # type: ignore[no-untyped-def]
    service = influxd_factory()
    httpx.post(f"{service.url}/query", data={"q": "CREATE DATABASE keep"}).raise_for_status()
    httpx.post(f"{service.url}/write", params={"db": "keep"}, content=b"m v=1i 1000000000").raise_for_status()
    port = service.port
    service.stop()
    assert not service.running
    service.start()
    assert service.port == port
    body = httpx.get(f"{service.url}/query", params={"db": "keep", "q": "SELECT count(v) FROM m"}).json()
    assert body["results"][0]["series"][0]["values"][0][1] == 1


def test_postgres_serves_a_migrated_database_of_its_own(postgres_engine: Engine, postgres: Postgres) -> None:
    with postgres_engine.connect() as connection:
        assert connection.dialect.name == "postgresql"
        assert connection.execute(text("SELECT current_user")).scalar() == Postgres.user
        tables = set(connection.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars())
    assert {"work_orders", "alembic_version"} <= tables
    assert postgres_engine.url.port == postgres.port
