"""`facmon up` on a real site file, without --demo: it runs the services, never a simulator. A simulator bound at a
controller's address would answer in the real device's place and hide that the device is not there."""

from __future__ import annotations

import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from facmon.kernel.daemons import free_port
from tests.support import one_elevator_site
from tests.system.processes import FacmonProcesses

ADMIN_PASSWORD = "a-long-admin-password"


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_a_real_up_binds_no_device_address_and_reports_the_device_silent(tmp_path: Path) -> None:
    controller_port = free_port()
    site = one_elevator_site("real-estate", controller_port)
    (tmp_path / "site.yaml").write_text(yaml.safe_dump(site))
    (tmp_path / "secret_key").write_text(secrets.token_urlsafe(48))
    env = {"FACMON_STATE_DIR": str(tmp_path / "state"), "FACMON_SECRET_KEY_FILE": str(tmp_path / "secret_key")}
    api_port = free_port()
    with FacmonProcesses(tmp_path, env) as facmon:
        assert (
            facmon.run("users", "add", "ops", "--role", "admin", "--password-stdin", stdin=ADMIN_PASSWORD).returncode
            == 0
        )
        up = facmon.start("up", "up", "--site", "site.yaml", "--api-port", str(api_port))
        health = facmon.wait_healthy(up, f"http://127.0.0.1:{api_port}/api/v1/health", timeout_s=90)
        assert health["database"] == "ok"
        assert not _listening(controller_port), "facmon up without --demo/--simulate started a simulator"
        login = httpx.post(
            f"http://127.0.0.1:{api_port}/api/v1/auth/login", json={"username": "ops", "password": ADMIN_PASSWORD}
        )
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        deadline = time.monotonic() + 30
        comm = None
        while time.monotonic() < deadline and comm != "lost":
            devices = httpx.get(f"http://127.0.0.1:{api_port}/api/v1/devices", headers=headers).json()["items"]
            comm = devices[0]["comm"]
            time.sleep(0.5)
        assert comm == "lost", "the controller that is not there must show as lost"
        up.proc.send_signal(signal.SIGINT)
        assert up.proc.wait(timeout=30) == 0, up.output()


def test_scenario_without_simulation_is_refused(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "facmon", "up", "--scenario", "examples/demo-scenario.yaml"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "--simulate" in done.stderr
