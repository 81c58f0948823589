"""`facmon api --workers 2`, started as an operator starts it: two worker processes serve one port, each keeps
serving while the other is killed and restarted, and SIGTERM stops them all, leaving no process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from facmon.kernel.ports import free_port
from tests.support import children_of

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _children(pid: int) -> set[int]:
    return set(children_of(pid))


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _until(what: str, check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.1)


def _serving(log: Path) -> set[int]:
    """The workers that said they take connections (each logs it once it does)."""
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return {line["pid"] for line in lines if line.get("event") == "API worker serving"}


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/v1/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def test_two_workers_serve_one_port_each_restarted_when_killed_and_sigterm_stops_all(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACMON_")}
    command = [sys.executable, "-m", "facmon", "api", "--site", str(EXAMPLES / "demo-site.yaml"), "--demo"]
    command += ["--state-dir", str(tmp_path / "state"), "--port", str(port), "--workers", "2", "--log-json"]
    log = (tmp_path / "api.log").open("w+")
    supervisor = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    workers: set[int] = set()
    try:
        _until("the API answers", lambda: _answers(url))
        _until("two workers serve", lambda: len(_serving(tmp_path / "api.log")) == 2)
        workers = _children(supervisor.pid)
        assert workers == _serving(tmp_path / "api.log")
        first, second = sorted(workers)

        # Each worker serves alone while the other is down, and the one killed is replaced.
        for victim in (first, second):
            os.kill(victim, signal.SIGKILL)
            _until(f"worker {victim} gone", lambda v=victim: not _alive(v))  # type: ignore[misc]
            assert all(_answers(url) for _ in range(5)), "the port stopped answering with one worker down"
            seen = frozenset(workers)
            _until("a worker serves in its place", lambda s=seen: len(_serving(tmp_path / "api.log") - s) == 1)  # type: ignore[misc]
            workers |= _children(supervisor.pid)
            assert _children(supervisor.pid) <= _serving(tmp_path / "api.log")
            assert _answers(url)
        assert len(workers) == 4
        log.seek(0)
        assert log.read().count("API worker stopped; starting another") == 2

        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(30) == 0
        assert not [pid for pid in workers if _alive(pid)], "a worker outlived SIGTERM"
        assert not _answers(url)
    finally:
        if supervisor.poll() is None:
            os.killpg(supervisor.pid, signal.SIGKILL)
            supervisor.wait()
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        log.close()
