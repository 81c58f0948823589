"""`facmon up` as a newcomer runs it: one command, a work order appears by itself, Ctrl-C leaves nothing behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from facmon.kernel.daemons import find_binary, free_port

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return found


def test_up_runs_the_demo_and_stops_cleanly(tmp_path: Path) -> None:
    # The demo site and scenario, moved to free ports and a faster clock so the scripted fault comes quickly.
    site = yaml.safe_load((EXAMPLES / "demo-site.yaml").read_text())
    for building in site["buildings"]:
        for device in building["devices"]:
            if "address" in device:  # Modbus devices; MQTT devices publish to the broker facmon up starts
                device["address"]["port"] = free_port()
    site_file = tmp_path / "site.yaml"
    site_file.write_text(yaml.safe_dump(site))
    state = tmp_path / "state"
    api_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACMON_")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "facmon.shell.cli",
            "up",
            "--demo",
            "--site",
            str(site_file),
            "--scenario",
            str(EXAMPLES / "demo-scenario.yaml"),
            "--api-port",
            str(api_port),
            "--state-dir",
            str(state),
            "--speed",
            "10",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    output: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            if "Press Ctrl-C" in line:
                break
        banner = "".join(output)
        assert f"http://127.0.0.1:{api_port}/api/v1/work-orders" in banner, banner
        assert _processes_mentioning(str(state)), "mosquitto and influxd should run as children"
        assert "engineer" in banner
        assert "demo-engineer-pass" in banner, "demo mode prints its accounts"
        _only_logins_on_the_broker(banner, state)
        login = httpx.post(
            f"http://127.0.0.1:{api_port}/api/v1/auth/login",
            json={"username": "engineer", "password": "demo-engineer-pass"},
            timeout=5,
        )
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}

        # The demo starts with a past year of work orders, all closed by now; the scenario's first fault (t=20 s at
        # 10x speed) opens a live one without anyone touching anything.
        past = httpx.get(f"http://127.0.0.1:{api_port}/api/v1/work-orders?status=closed", headers=headers, timeout=5)
        assert past.json()["total"] > 100, "the demo's past year"
        # At 10x the scenario's card read (t=30 s) puts it on site a second later: live is open or on site.
        deadline = time.monotonic() + 30
        items: list[dict[str, object]] = []
        while time.monotonic() < deadline and not items:
            url = f"http://127.0.0.1:{api_port}/api/v1/work-orders?device=b1-e1&sort=-detected_at&limit=1"
            found = httpx.get(url, headers=headers, timeout=5).json()["items"]
            items = [wo for wo in found if wo["status"] in ("open", "on_site")]
            time.sleep(0.2)
        assert items, "no work order appeared from the demo scenario"
        assert items[0]["fault"] == "2", items
        assert httpx.get(f"http://127.0.0.1:{api_port}/api/v1/work-orders", timeout=5).status_code == 401
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rest, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            rest, _ = proc.communicate()
            raise
    assert proc.returncode == 0, "".join(output) + rest
    assert "stopped" in rest
    assert _processes_mentioning(str(state)) == [], "a child process outlived facmon up"


def _only_logins_on_the_broker(banner: str, state: Path) -> None:
    """The demo's Mosquitto lets in no anonymous client, and the console login of its generated configuration reads
    the backbone."""
    match = re.search(r"MQTT broker\s+127\.0\.0\.1:(\d+)", banner)
    assert match, banner
    base = [find_binary("mosquitto_sub"), "-p", match.group(1), "-t", "facmon/v1/#", "-C", "1", "-W", "20"]
    anonymous = subprocess.run(base, capture_output=True, text=True, timeout=30)
    assert anonymous.returncode != 0
    assert "not authori" in (anonymous.stdout + anonymous.stderr).lower(), anonymous
    env_file = state / "broker" / "env" / "console.env"
    assert env_file.stat().st_mode & 0o077 == 0, "a login's env file is its owner's alone"
    login = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
    console = [*base, "-u", login["FACMON_MQTT_USERNAME"], "-P", login["FACMON_MQTT_PASSWORD"]]
    heard = subprocess.run(console, capture_output=True, text=True, timeout=30)
    assert heard.returncode == 0, heard
