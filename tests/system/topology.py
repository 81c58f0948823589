"""The production topology's parts shared by the tests that run it (tests/system, tests/faults): the settings every
service reads, each service's command line as deploy/systemd runs it, and waiting for their health checks.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import httpx

from tests.system.processes import FacmonProcesses, Started

# The services that serve `/health` and `/metrics` on a port of their own (`--metrics-port`).
PROBED = ("gateway", "historian", "rules", "notifier")


def on_call_elevator_technician() -> dict[str, Any]:
    """Site-file sections: technician `li` (Li Ming), on call for elevators every week."""
    technician = {"id": "li", "name": "Li Ming", "phone": "13800000001", "email": "li.ming@estate.example"}
    rota = {"technicians": ["li"], "every": "1w", "handoff": "08:30", "start": "2026-01-05"}
    return {"technicians": [technician | {"disciplines": ["elevator"]}], "on_call": {"elevator": rota}}


def service_env(
    workdir: Path,
    *,
    mqtt_port: int,
    influx_url: str,
    influx_db: str,
    public_url: str,
    webhooks: list[dict[str, str]],
) -> dict[str, str]:
    """FACMON_* as /etc/facmon/facmon.env holds them for a real (non-demo) start, with a secret key file."""
    secret = workdir / "secret_key"
    if not secret.exists():
        secret.write_text(secrets.token_urlsafe(48))
    return {
        "FACMON_STATE_DIR": str(workdir / "state"),
        "FACMON_MQTT_HOST": "127.0.0.1",
        "FACMON_MQTT_PORT": str(mqtt_port),
        "FACMON_INFLUX_URL": influx_url,
        "FACMON_INFLUX_DB": influx_db,
        "FACMON_SECRET_KEY_FILE": str(secret),
        "FACMON_PUBLIC_URL": public_url,
        "FACMON_WEBHOOKS": json.dumps(webhooks),
        "FACMON_LOG_JSON": "1",
    }


def service_args(service: str, site: Path, ports: dict[str, int]) -> list[str]:
    """The command line of a service as deploy/systemd runs it: its site files and its health and metrics port."""
    return ["--site", str(site), "--metrics-port", str(ports[service])]


def wait_healthy(facmon: FacmonProcesses, started: Started, service: str, port: int, timeout_s: float = 60.0) -> None:
    """Until the service answers its health check `ok`, with its own `facmon_<service>_healthy 1.0` gauge."""
    health = facmon.wait_healthy(started, f"http://127.0.0.1:{port}/health", timeout_s)
    assert (health["service"], health["status"]) == (service, "ok"), health
    scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    assert scraped.status_code == 200
    # Every service's own gauge of its health, for an alert rule in Prometheus.
    assert f"facmon_{service}_healthy 1.0" in scraped.text.splitlines(), scraped.text
