"""facmon commands as the operating system runs them: each service its own process, started through the CLI.

`FacmonProcesses` starts `facmon <command> ...` with a clean environment (no FACMON_* of the caller's), keeps each
one's output in a log file, waits for health endpoints, and at the end stops every process with SIGTERM, as systemd
does, and checks that each stopped cleanly (exit status 0) within the time systemd would give it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

STOP_TIMEOUT_S = 20.0


@dataclass
class Started:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def output(self, last: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-last:]


@dataclass
class FacmonProcesses:
    workdir: Path
    env: dict[str, str]
    started: list[Started] = field(default_factory=list)

    def start(self, name: str, *args: str) -> Started:
        log = self.workdir / f"{name}.log"
        base = {k: v for k, v in os.environ.items() if not k.startswith("FACMON_")}
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "facmon", *args],
                env=base | self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
            )
        started = Started(name, proc, log)
        self.started.append(started)
        return started

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """A one-shot command (`facmon users add ...`) in the same environment."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("FACMON_")}
        return subprocess.run(
            [sys.executable, "-m", "facmon", *args],
            env=base | self.env,
            cwd=self.workdir,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def wait_healthy(self, started: Started, url: str, timeout_s: float = 60.0) -> dict[str, object]:
        """The JSON of `url` once it answers 200; fails naming the process and its last output otherwise."""
        deadline = time.monotonic() + timeout_s
        last = "no answer"
        while time.monotonic() < deadline:
            if started.proc.poll() is not None:
                raise AssertionError(f"{started.name} exited with {started.proc.returncode}:\n{started.output()}")
            try:
                response = httpx.get(url, timeout=2)
                if response.status_code == 200:
                    body: dict[str, object] = response.json()
                    return body
                last = f"{response.status_code} {response.text[:300]}"
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.2)
        raise AssertionError(f"{started.name} not healthy at {url} after {timeout_s} s ({last}):\n{started.output()}")

    def kill(self, started: Started) -> int:
        """SIGKILL, as a crash or the OOM killer ends a process: no clean-up runs. Its exit status."""
        started.proc.kill()
        return started.proc.wait()

    def stop(self, started: Started) -> int | None:
        """SIGTERM, as systemd stops a service; its exit status, None if it had to be killed after STOP_TIMEOUT_S."""
        started.proc.send_signal(signal.SIGTERM)
        try:
            return started.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill(started)
            return None

    def stop_all(self) -> dict[str, int | None]:
        """SIGTERM to every process still running; their exit statuses (None: did not stop in time, then killed)."""
        for started in self.started:
            if started.proc.poll() is None:
                started.proc.send_signal(signal.SIGTERM)
        codes: dict[str, int | None] = {}
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for started in self.started:
            try:
                codes[started.name] = started.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                started.proc.kill()
                started.proc.wait()
                codes[started.name] = None
        return codes

    def __enter__(self) -> FacmonProcesses:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop_all()
