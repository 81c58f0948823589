"""The README is a test: its quick start from a fresh clone, and every example of its demo sections on that demo.

`make demo` in a clone, with the default state folder and only the API port chosen as the README shows: the banner
appears, an engineer signs in with the printed password, a live work order is listed within 60 s, every device of
the estate is `comm: ok`, the README's examples each show what the README says, and Ctrl-C leaves no process behind.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import httpx

from facmon.kernel.daemons import free_port
from tests.system.quickstart import REPO, fresh_clone, make_demo, processes_of
from tests.system.readme_examples import check, commands, run_all

DEMO_DEVICES = 31


def _signed_in(api: str, password: str) -> dict[str, str]:
    login = httpx.post(f"{api}/auth/login", json={"username": "engineer", "password": password}, timeout=10)
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def _until(check: object, timeout_s: float, what: str) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = check()  # type: ignore[operator]
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"{what} not within {timeout_s} s")


def test_the_quick_start_and_every_demo_example_from_a_fresh_clone(tmp_path: Path) -> None:
    clone = fresh_clone(tmp_path / "facmon")
    api_port = free_port()
    demo = make_demo(clone, api_port)
    try:
        # First start: the past year is written first (about 30 s), then the services start.
        demo.wait_for_line(r"Press Ctrl-C to stop\.", timeout_s=180)
        banner = demo.output()
        api = f"http://127.0.0.1:{api_port}/api/v1"
        assert f"{api}/work-orders" in banner
        password = demo.wait_for_line(r"engineer\s+engineer\s+password (\S+)", 1).group(1)
        mqtt_port = demo.wait_for_line(r"MQTT broker\s+127\.0\.0\.1:(\d+)", 1).group(1)
        influx_port = demo.wait_for_line(r"InfluxDB\s+http://127\.0\.0\.1:(\d+)", 1).group(1)
        assert str(clone / ".facmon") in banner, "the default state folder, made absolute"
        headers = _signed_in(api, password)

        def live_work_orders() -> list[object]:
            answer = httpx.get(f"{api}/work-orders", params={"status": "open"}, headers=headers, timeout=10)
            items: list[object] = answer.json()["items"]
            return items

        _until(live_work_orders, 60, "a live work order from the demo scenario")

        def all_heard() -> bool:
            page = httpx.get(f"{api}/devices", headers=headers, timeout=10).json()
            devices = page["items"]
            assert page["total"] == len(devices) == DEMO_DEVICES
            return all(d["comm"] == "ok" for d in devices)

        _until(all_heard, 60, f"all {DEMO_DEVICES} devices comm ok")

        readme = (clone / "README.md").read_text()
        listed = commands(readme)
        ports = {"localhost:8080": f"localhost:{api_port}", "18830": mqtt_port, "18086": influx_port}
        env = {k: v for k, v in os.environ.items() if not k.startswith("FACMON_")} | {"PYTHONPATH": str(clone)}
        for ran in run_all(listed, clone, ports, env):
            check(ran, clone)
        assert (clone / "insurance.pdf").read_bytes().startswith(b"%PDF")

        demo.interrupt()  # make itself ends by the SIGINT; what matters is that facmon stopped everything
        assert re.search(r"^stopped$", demo.output(), re.MULTILINE), demo.output()
        assert processes_of(clone) == [], "a process outlived Ctrl-C"
    finally:
        demo.kill()
    assert REPO.exists()
