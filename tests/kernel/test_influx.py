"""The InfluxDB client against a real influxd: writes, queries, databases, and the kind of each failure."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from facmon.kernel.daemons import Influxd, free_port
from facmon.kernel.influx import (
    BlockingInfluxClient,
    InfluxAuthError,
    InfluxBadRequest,
    InfluxClient,
    InfluxDatabaseNotFound,
    InfluxSettings,
    InfluxUnreachable,
)

T0_NS = 1_772_353_815_000_000_000
ADMIN, PASSWORD = "admin", "s3cret-pass"


class AuthInfluxd(Influxd):
    """influxd with authentication on: every request needs a user's credentials."""

    def command(self) -> list[str]:
        command = super().command()
        conf = self.workdir / "influxdb.conf"
        conf.write_text(conf.read_text().replace("[http]\n", "[http]\n  auth-enabled = true\n"))
        return command


@pytest.fixture(scope="module")
def auth_influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influxd]:
    service = AuthInfluxd(tmp_path_factory.mktemp("influxd-auth"))
    service.start()
    # With no user yet, influxd lets the first admin be made without credentials.
    query = f"CREATE USER {ADMIN} WITH PASSWORD '{PASSWORD}' WITH ALL PRIVILEGES"
    httpx.post(f"{service.url}/query", data={"q": query}, timeout=10).raise_for_status()
    yield service
    service.stop()


@pytest.fixture
def new_db(influxd: Influxd) -> Iterator[str]:
    name = f"k_{uuid.uuid4().hex[:12]}"
    yield name
    httpx.post(f"{influxd.url}/query", data={"q": f'DROP DATABASE "{name}"'})


async def test_create_write_and_query(influxd: Influxd, new_db: str) -> None:
    async with InfluxClient(InfluxSettings(influxd.url + "/", new_db)) as influx:
        assert await influx.ping()  # influxd says its version
        await influx.create_database()
        await influx.create_database()  # nothing to do the second time
        await influx.write([f"elevator,site=s1,device=e{i % 2} floor={i}i {T0_NS + i}" for i in range(5)])
        await influx.write(f"elevator,site=s1,device=e9 floor=9i {T0_NS + 9}".encode())
        series = await influx.query("SELECT floor FROM elevator WHERE device = $device", {"device": "e1"})
        rows = [[T0_NS + 1, 1], [T0_NS + 3, 3]]
        assert series == [{"name": "elevator", "columns": ["time", "floor"], "values": rows}]
        count, keys = await influx.statements("SELECT count(floor) FROM elevator; SHOW TAG KEYS FROM elevator")
        assert count[0]["values"][0][1] == 6
        assert [k for (k,) in keys[0]["values"]] == ["device", "site"]
        assert await influx.query("SELECT floor FROM elevator WHERE device = 'nobody'") == []


async def test_bad_data_carries_influxdbs_reason(influxd: Influxd, new_db: str) -> None:
    async with InfluxClient(InfluxSettings(influxd.url, new_db)) as influx:
        await influx.create_database()
        with pytest.raises(InfluxBadRequest) as garbage:
            await influx.write(["elevator,site=s1 this is not line protocol"])
        assert garbage.value.status == 400
        assert "unable to parse" in garbage.value.detail
        assert not garbage.value.retryable
        await influx.write([f"elevator,site=s1 floor=1i {T0_NS}"])
        with pytest.raises(InfluxBadRequest, match="field type conflict"):
            await influx.write([f"elevator,site=s1 floor=2.5 {T0_NS + 1}"])
        with pytest.raises(InfluxBadRequest, match="error parsing query"):
            await influx.query("SELECT FROM WHERE")
        with pytest.raises(InfluxBadRequest, match="InfluxQL error") as statement:  # a 200 with the statement's error
            await influx.query("SELECT floor FROM elevator WHERE time > 'yesterday-ish'")
        assert statement.value.status == 200


async def test_a_missing_database_is_its_own_error(influxd: Influxd, new_db: str) -> None:
    async with InfluxClient(InfluxSettings(influxd.url, new_db)) as influx:
        with pytest.raises(InfluxDatabaseNotFound):
            await influx.write([f"elevator,site=s1 floor=1i {T0_NS}"])
        with pytest.raises(InfluxDatabaseNotFound):
            await influx.query("SELECT * FROM elevator")
        await influx.create_database()
        await influx.write([f"elevator,site=s1 floor=1i {T0_NS}"])


async def test_no_server_is_retryable() -> None:
    settings = InfluxSettings(f"http://127.0.0.1:{free_port()}", "nowhere", timeout_s=2)
    async with InfluxClient(settings) as influx:
        with pytest.raises(InfluxUnreachable) as refused:
            await influx.write(["elevator,site=s1 floor=1i"])
    assert refused.value.retryable
    assert refused.value.status is None
    assert str(refused.value).startswith("InfluxDB unreachable: ConnectError")


async def test_a_server_error_is_retryable() -> None:
    def overloaded(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={"error": "engine overloaded"})

    settings = InfluxSettings("http://influx.invalid:8086", "db")
    async with InfluxClient(settings, transport=httpx.MockTransport(overloaded)) as influx:
        with pytest.raises(InfluxUnreachable, match="engine overloaded") as busy:
            await influx.write(["elevator,site=s1 floor=1i"])
    assert busy.value.status == 503


async def test_credentials(auth_influxd: Influxd) -> None:
    db = f"k_{uuid.uuid4().hex[:12]}"
    line = f"elevator,site=s1 floor=1i {T0_NS}"
    async with InfluxClient(InfluxSettings(auth_influxd.url, db, username=ADMIN, password=PASSWORD)) as influx:
        await influx.create_database()
        await influx.write([line])
        assert (await influx.query("SELECT count(floor) FROM elevator"))[0]["values"][0][1] == 1
    for username, password in ((None, None), (ADMIN, "wrong")):
        async with InfluxClient(InfluxSettings(auth_influxd.url, db, username=username, password=password)) as influx:
            with pytest.raises(InfluxAuthError) as refused:
                await influx.write([line])
            assert refused.value.status == 401
            assert not refused.value.retryable
            with pytest.raises(InfluxAuthError):
                await influx.query("SELECT count(floor) FROM elevator")
    # A user without rights on the database: 403.
    async with InfluxClient(InfluxSettings(auth_influxd.url, db, username=ADMIN, password=PASSWORD)) as admin:
        await admin.create_database()
        await admin.write(b"")  # an empty body is fine
        await admin.statements("CREATE USER reader WITH PASSWORD 'reader-pass'")
    async with InfluxClient(InfluxSettings(auth_influxd.url, db, username="reader", password="reader-pass")) as influx:
        with pytest.raises(InfluxAuthError) as forbidden:
            await influx.write([line])
        assert forbidden.value.status == 403


def test_the_blocking_client_is_the_same(influxd: Influxd, new_db: str) -> None:
    with BlockingInfluxClient(InfluxSettings(influxd.url, new_db)) as influx:
        assert influx.ping()
        influx.create_database()
        influx.write([f"elevator,site=s1 floor=4i {T0_NS}"])
        assert influx.query("SELECT floor FROM elevator")[0]["values"] == [[T0_NS, 4]]
        with pytest.raises(InfluxBadRequest, match="unable to parse"):
            influx.write(["not line protocol"])
