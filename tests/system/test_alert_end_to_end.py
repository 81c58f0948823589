"""An alert, end to end on real services: a car alarm on a simulated controller -> gateway -> rules -> notifier ->
a signed webhook at a real HTTP receiver and an e-mail at a real SMTP server; the one-tap link in the message
acknowledges the work order."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
from datetime import date
from pathlib import Path

import httpx

from facmon.estate.site import Site
from facmon.kernel.daemons import Influxd, Mosquitto, free_port
from facmon.kernel.mqtt import MqttSettings
from facmon.notifier.channels import SmtpConfig, WebhookConfig
from facmon.notifier.channels.webhook import verify_signature
from facmon.shell.compose import Endpoints
from facmon.shell.inprocess import demo_headers, system_running
from simulators.elevator import ElevatorSimulator
from simulators.site import SiteSimulator
from tests.notifier.support import Inbox, http_receiver
from tests.support import wait_for

HOOK_SECRET = "k" * 40


def _site(site_id: str) -> Site:
    return Site.model_validate(
        {
            "site": {"id": site_id},
            "buildings": [
                {
                    "id": "b1",
                    "devices": [
                        {
                            "id": "e1",
                            "kind": "elevator",
                            "model": "elev-gb-a",
                            "role": "main",
                            "address": {"host": "127.0.0.1", "port": free_port(), "unit": 1},
                        }
                    ],
                }
            ],
            "technicians": [
                {
                    "id": "li",
                    "name": "Li Ming",
                    "phone": "13800000001",
                    "email": "li.ming@estate.example",
                    "cards": ["A1B2C3D4"],
                    "disciplines": ["elevator"],
                }
            ],
            "on_call": {
                "elevator": {"technicians": ["li"], "every": "weekly", "handoff": "08:30", "start": date(2026, 1, 5)}
            },
        }
    )


async def test_a_car_alarm_reaches_the_webhook_and_its_link_acknowledges(
    mosquitto: Mosquitto,
    influxd: Influxd,
    influx_db: str,
    tmp_path: Path,
    topic_prefix: str,
    smtp_server: tuple[Inbox, int],
) -> None:
    inbox, smtp_port = smtp_server
    smtp = SmtpConfig(host="127.0.0.1", port=smtp_port, sender="facmon@estate.example", timeout_s=5)
    site = _site(topic_prefix)
    endpoints = Endpoints(
        MqttSettings("127.0.0.1", mosquitto.port), influxd.url, influx_db, f"sqlite:///{tmp_path / 'wo.db'}"
    )
    simulator = SiteSimulator(site, seed=5)
    sim_task = asyncio.create_task(simulator.run())
    try:
        await asyncio.wait_for(simulator.serving.wait(), 10)
        async with http_receiver() as receiver:
            hook = WebhookConfig(url=receiver.url, secret=HOOK_SECRET)  # type: ignore[arg-type]
            async with (
                system_running(site, endpoints, state_dir=tmp_path / "state", webhooks=[hook], smtp=smtp) as api,
                httpx.AsyncClient(base_url=api, timeout=5, headers=await demo_headers(api)) as client,
            ):
                elevator = simulator.sims["e1"]
                assert isinstance(elevator, ElevatorSimulator)
                elevator.inject_fault(15)  # car alarm button: an emergency, alerted at once

                async def hook_called() -> bool:
                    return bool(receiver.requests)

                await wait_for(hook_called, 10, "the webhook request at the receiver")
                request = receiver.requests[0]
                assert verify_signature(
                    HOOK_SECRET.encode(),
                    request.headers["x-facmon-timestamp"],
                    request.body,
                    request.headers["x-facmon-signature"],
                )
                body = json.loads(request.body)
                assert body["device"] == "e1"
                assert body["priority"] == "emergency"
                assert body["recipient"]["name"] == "Li Ming"

                # The same alert by e-mail, to the on-call technician's address.
                async def mailed() -> bool:
                    return bool(inbox.envelopes)

                await wait_for(mailed, 10, "the e-mail at the SMTP server")
                mail = email.message_from_bytes(inbox.envelopes[0].content, policy=email.policy.default)
                assert inbox.envelopes[0].rcpt_tos == ["li.ming@estate.example"]
                assert "e1" in str(mail["subject"])
                plain = mail.get_body(preferencelist=("plain",))
                assert plain is not None
                assert body["ack_url"] in plain.get_content()

                # One tap on the link in the message: the work order is acknowledged by Li Ming.
                tap = {"accept": "application/json", "Sec-Fetch-User": "?1"}  # as a phone browser sends it
                tapped = await client.get(body["ack_url"], headers=tap)
                assert tapped.status_code == 200, tapped.text
                detail = (await client.get(f"/work-orders/{body['work_order_id']}")).json()
                assert detail["status"] == "acknowledged"
                acked = [e for e in detail["timeline"] if e.get("status") == "acknowledged"]
                assert [(e["source"], e["actor"]) for e in acked] == [("alert_link", "Li Ming")]
    finally:
        sim_task.cancel()
        await asyncio.gather(sim_task, return_exceptions=True)
