"""A backup restored into a fresh state folder is what a real (non-demo) `facmon api` then serves: its admin signs
in, its work order is there; and while the API has the database open, a second restore is refused."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from facmon.kernel.daemons import free_port
from facmon.kernel.db import make_engine
from rules.engine import load_rules
from tests.shell.ops.support import ROOT, START, facmon, open_work_order, run, wait_until

SITE_FILE = ROOT / "examples" / "demo-site.yaml"
PASSWORD = "a restored admin's password"


def _healthy(base: str, api: subprocess.Popen[bytes], log: Path) -> bool:
    if api.poll() is not None:
        raise AssertionError(f"facmon api exited with {api.returncode}:\n{log.read_text()}")
    try:
        return httpx.get(f"{base}/api/v1/health", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_a_restored_database_is_served_by_the_api(tmp_path: Path) -> None:
    source = tmp_path / "source"
    added = run("users", "add", "ops", "--role", "admin", "--password-stdin", state=source, stdin=PASSWORD + "\n")
    assert added.exit_code == 0, added.output
    engine = make_engine(f"sqlite:///{tmp_path / 'source' / 'facmon.db'}")
    work_order = open_work_order(engine, load_rules(), 1, START, device="b1-e1")
    engine.dispose()
    backup = tmp_path / "facmon-backup.db"
    made = run("backup", str(backup), state=source)
    assert made.exit_code == 0, made.output

    fresh = tmp_path / "fresh"
    restored = run("restore", str(backup), state=fresh)
    assert restored.exit_code == 0, restored.output
    assert "1 work order(s) (1 open), 1 user(s)" in restored.stdout

    key_file = tmp_path / "secret_key"
    key_file.write_text(base64.b64encode(os.urandom(48)).decode() + "\n")
    key_file.chmod(0o600)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "api.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACMON_")}
    with open(log, "wb") as out:
        api = subprocess.Popen(
            [sys.executable, "-m", "facmon", "api", "--site", str(SITE_FILE), "--host", "127.0.0.1",
             "--port", str(port)],
            env=env | {"FACMON_STATE_DIR": str(fresh), "FACMON_SECRET_KEY_FILE": str(key_file)},
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_until(lambda: _healthy(base, api, log), 60, "the API's health to answer 200")
        probed = facmon("probe", f"{base}/api/v1/health", env={})
        assert probed.returncode == 0, probed.stderr
        login = httpx.post(f"{base}/api/v1/auth/login", json={"username": "ops", "password": PASSWORD}, timeout=10)
        assert login.status_code == 200, login.text
        token = login.json()["access_token"]
        got = httpx.get(
            f"{base}/api/v1/work-orders/{work_order}", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert got.status_code == 200, got.text
        body = got.json()
        assert (body["id"], body["site"], body["device"], body["status"]) == (
            work_order, "sunrise-garden", "b1-e1", "open"
        )  # fmt: skip

        again = run("restore", "--force", str(backup), state=fresh)
        assert again.exit_code == 2
        assert "open in a running process" in again.stderr
    finally:
        api.send_signal(signal.SIGTERM)
        code = api.wait(timeout=30)
    # A clean stop on SIGTERM, as systemd sends it: exit status 0.
    assert code == 0, log.read_text()
    assert "signal=SIGTERM" in log.read_text()
