"""The production topology as users run it: every service its own process, started through the CLI, in a non-demo
configuration (a secret key file, an admin made with `facmon users add`), with a real Mosquitto and influxd.

A car alarm on a simulated controller (`facmon simulate`, told through its command topic) must become a work order
in the API, a signed webhook at a real HTTP receiver, an e-mail at a real SMTP server, and readings in InfluxDB; every
service answers its health check, and each stops cleanly (exit 0) on SIGTERM. Once with the SQLite file of the state
folder, once with FACMON_DB_URL naming an empty database on the real PostgreSQL server, which `facmon db upgrade`
migrates before the services start.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import secrets
from pathlib import Path

import aiomqtt
import httpx
import pytest
import yaml
from sqlalchemy import text

from facmon.kernel.daemons import Influxd, Mosquitto, free_port
from facmon.kernel.db import make_engine
from facmon.notifier.channels.webhook import verify_signature
from simulators.site import command_topic
from tests.conftest import influxql
from tests.databases import BACKENDS, Databases
from tests.notifier.support import Inbox, http_receiver
from tests.support import one_elevator_site, wait_for
from tests.system.processes import FacmonProcesses, Started
from tests.system.topology import PROBED, on_call_elevator_technician, service_args, wait_healthy

HOOK_SECRET = "w" * 40
ADMIN_PASSWORD = "a-long-admin-password"


def _site_file(path: Path, site_id: str) -> Path:
    site = one_elevator_site(site_id, free_port(), **on_call_elevator_technician())
    path.write_text(yaml.safe_dump(site, sort_keys=False))
    return path


def _all_healthy(facmon: FacmonProcesses, services: dict[str, Started], ports: dict[str, int], api_port: int) -> None:
    for name, port in ports.items():
        wait_healthy(facmon, services[name], name, port)
    assert facmon.wait_healthy(services["api"], f"http://127.0.0.1:{api_port}/api/v1/health")["status"] == "ok"


@pytest.mark.parametrize("db_backend", BACKENDS, indirect=True)
async def test_a_fault_reaches_api_webhook_email_and_influxdb_through_separate_processes(
    databases: Databases,
    mosquitto: Mosquitto,
    influxd: Influxd,
    influx_db: str,
    tmp_path: Path,
    topic_prefix: str,
    smtp_server: tuple[Inbox, int],
) -> None:
    inbox, smtp_port = smtp_server
    site = _site_file(tmp_path / "site.yaml", topic_prefix)
    (tmp_path / "secret_key").write_text(secrets.token_urlsafe(48))
    api_port = free_port()
    async with http_receiver() as receiver:
        env = {
            "FACMON_STATE_DIR": str(tmp_path / "state"),
            "FACMON_MQTT_HOST": "127.0.0.1",
            "FACMON_MQTT_PORT": str(mosquitto.port),
            "FACMON_INFLUX_URL": influxd.url,
            "FACMON_INFLUX_DB": influx_db,
            "FACMON_SECRET_KEY_FILE": str(tmp_path / "secret_key"),
            "FACMON_PUBLIC_URL": f"http://127.0.0.1:{api_port}",
            "FACMON_WEBHOOKS": json.dumps([{"url": receiver.url, "secret": HOOK_SECRET}]),
            "FACMON_SMTP": json.dumps({"host": "127.0.0.1", "port": smtp_port, "sender": "facmon@estate.example"}),
            "FACMON_LOG_JSON": "1",
        }
        if databases.backend == "postgresql":
            env["FACMON_DB_URL"] = databases.url(migrated=False)
        with FacmonProcesses(tmp_path, env) as facmon:
            if databases.backend == "postgresql":
                upgraded = facmon.run("db", "upgrade")
                assert upgraded.returncode == 0, upgraded.stderr
                assert "before: none (empty database)" in upgraded.stdout
            made = facmon.run("users", "add", "ops", "--role", "admin", "--password-stdin", stdin=ADMIN_PASSWORD)
            assert made.returncode == 0, made.stderr
            ports = {name: free_port() for name in PROBED}
            facmon.start("simulate", "simulate", "--site", str(site))
            services = {name: facmon.start(name, name, *service_args(name, site, ports)) for name in ports}
            services["api"] = facmon.start("api", "api", "--site", str(site), "--port", str(api_port))
            await asyncio.to_thread(_all_healthy, facmon, services, ports, api_port)

            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}/api/v1", timeout=10) as api:
                login = await api.post("/auth/login", json={"username": "ops", "password": ADMIN_PASSWORD})
                assert login.status_code == 200, login.text
                api.headers["Authorization"] = f"Bearer {login.json()['access_token']}"

                # Wait until the gateway polls the controller, then press the car's alarm button (an emergency).
                async def polled() -> bool:
                    return bool(influxql(influxd.url, influx_db, "SELECT count(*) FROM elevator"))

                await wait_for(polled, 30, "the elevator's readings in InfluxDB", every_s=0.5)
                async with aiomqtt.Client("127.0.0.1", mosquitto.port) as control:
                    command = json.dumps({"action": "fault", "code": 15})
                    await control.publish(command_topic(topic_prefix, "e1"), command, qos=1)

                async def opened() -> list[dict[str, object]]:
                    items: list[dict[str, object]] = (await api.get("/work-orders")).json()["items"]
                    return items

                orders = await wait_for(opened, 30, "the work order in the API")
                assert [(o["device"], o["fault"], o["priority"]) for o in orders] == [("e1", "15", "emergency")]

                await wait_for(lambda: asyncio.sleep(0, bool(receiver.requests)), 30, "the webhook")
                hook = receiver.requests[0]
                headers = hook.headers
                assert verify_signature(
                    HOOK_SECRET.encode(), headers["x-facmon-timestamp"], hook.body, headers["x-facmon-signature"]
                )
                body = json.loads(hook.body)
                assert (body["device"], body["recipient"]["name"]) == ("e1", "Li Ming")
                assert body["ack_url"].startswith(f"http://127.0.0.1:{api_port}/api/v1/ack/")

                await wait_for(lambda: asyncio.sleep(0, bool(inbox.envelopes)), 30, "the e-mail")
                assert inbox.envelopes[0].rcpt_tos == ["li.ming@estate.example"]
                mail = email.message_from_bytes(inbox.envelopes[0].content, policy=email.policy.default)
                assert "e1" in str(mail["subject"])

                deliveries = (await api.get(f"/work-orders/{orders[0]['id']}/deliveries")).json()
                delivered = {d["channel"] for d in deliveries if d["delivered_at"] is not None}
                assert {"webhook", "email", "mqtt_push"} <= delivered, deliveries

            readings = influxql(influxd.url, influx_db, "SELECT last(fault_code) FROM elevator WHERE device = 'e1'")
            assert readings
            assert readings[0]["values"][0][1] == 15  # type: ignore[index]
            if databases.backend == "postgresql":  # the services kept it there, not in a file of the state folder
                assert not (tmp_path / "state" / "facmon.db").exists()
                engine = make_engine(env["FACMON_DB_URL"])
                with engine.connect() as connection:
                    faults = connection.execute(text("SELECT device, fault FROM work_orders")).all()
                engine.dispose()
                assert [tuple(row) for row in faults] == [("e1", "15")]
            codes = facmon.stop_all()
            logs = {s.name: s.output(800) for s in facmon.started}
            assert codes == dict.fromkeys(["simulate", *services], 0), (codes, logs)
            # --log-json on request: every line each service wrote is a JSON object.
            for started in facmon.started:
                for line in started.log.read_text().splitlines():
                    assert isinstance(json.loads(line), dict), (started.name, line)
