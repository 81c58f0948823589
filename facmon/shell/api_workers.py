"""`facmon api --workers N`: N API processes serving one port, supervised by the `facmon api` process.

The supervisor binds the listening socket once and starts N workers, each a `facmon api` of its own (`--worker-fd`)
that inherits the socket and serves it with its own event loop, database pool and metrics; the kernel hands each
new connection to one of them. A worker that stops is logged and started again (after a pause when it stopped
right after starting, so a worker that cannot start does not spin). SIGTERM or SIGINT stops every worker with
SIGTERM (each finishes its requests in flight, as a single `facmon api` does) and then the supervisor; a worker
still running after `STOP_TIMEOUT` is killed. Workers also get SIGTERM from the kernel if the supervisor dies, so
none is left behind.

Why not uvicorn's own `--workers`: it needs the application as an import string built from scratch in each
process, while `facmon api` builds it from the site files, the settings and its start checks; a worker here is
exactly the single-process `facmon api`, started the way an operator would start it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType

import structlog

from facmon.estate.site import Site
from facmon.kernel.clock import SystemClock
from facmon.kernel.health import Service
from facmon.kernel.metrics import Counters
from facmon.shell.settings import Settings

log = structlog.get_logger(__name__)

STOP_TIMEOUT = 20.0
# A worker that stopped sooner than this after it started waits RESTART_PAUSE before the next try.
QUICK_EXIT = 5.0
RESTART_PAUSE = 2.0
_PR_SET_PDEATHSIG = 1


def listening_socket(host: str, port: int) -> socket.socket:
    """The socket the workers share: bound and listening, inheritable by child processes."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _die_with_parent() -> None:
    """In the worker before it runs: SIGTERM when the supervisor goes away, however it goes (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


@dataclass
class _Worker:
    process: subprocess.Popen[bytes]
    started: float


class Supervisor:
    """Starts `count` workers with `command(fd)` and keeps them running until told to stop."""

    def __init__(self, command: Callable[[int], Sequence[str]], sock: socket.socket, count: int) -> None:
        self.command = command
        self.sock = sock
        self.count = count
        self.workers: list[_Worker] = []
        self.stopping = False

    def _start(self) -> _Worker:
        fd = self.sock.fileno()
        process = subprocess.Popen(list(self.command(fd)), pass_fds=(fd,), preexec_fn=_die_with_parent)
        log.info("API worker started", pid=process.pid)
        return _Worker(process, time.monotonic())

    def _stop_signal(self, signum: int, _frame: FrameType | None) -> None:
        if not self.stopping:
            log.info("stopping", signal=signal.Signals(signum).name)
        self.stopping = True

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._stop_signal)
        self.workers = [self._start() for _ in range(self.count)]
        while not self.stopping:
            for index, worker in enumerate(self.workers):
                code = worker.process.poll()
                if code is None or self.stopping:
                    continue
                quick = time.monotonic() - worker.started < QUICK_EXIT
                log.warning("API worker stopped; starting another", pid=worker.process.pid, exit_code=code)
                if quick:
                    time.sleep(RESTART_PAUSE)
                if not self.stopping:
                    self.workers[index] = self._start()
            time.sleep(0.2)
        self._stop_all()
        return 0

    def _stop_all(self) -> None:
        for worker in self.workers:
            if worker.process.poll() is None:
                worker.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for worker in self.workers:
            try:
                worker.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("API worker did not stop in time; killed", pid=worker.process.pid)
                worker.process.kill()
                worker.process.wait()
        self.sock.close()


def worker_command(arguments: Sequence[str]) -> Callable[[int], list[str]]:
    """The command of one worker: `facmon api` with `arguments` (the supervisor's own, less --workers) and the
    inherited socket's descriptor."""
    return lambda fd: [sys.executable, "-m", "facmon", "api", *arguments, "--worker-fd", str(fd)]


def supervise(
    settings: Settings,
    sites: Sequence[Site],
    arguments: list[str],
    workers: int,
    banner: Callable[[Sequence[Site]], None],
) -> int:
    """The start checks once (the database brought to head, the accounts checked or the demo ones made, the demo's
    link-signing key generated, so the workers do not race to do it), the socket, then `workers` workers until
    SIGTERM. `arguments`: the supervisor's own (they hold --host and --port). Raises StartRefused or OSError (the
    port taken) before any worker starts."""
    from facmon.shell.compose import Composer
    from facmon.shell.local import endpoints

    async def check() -> None:
        async with Composer(settings, endpoints(settings), clock=SystemClock(), metrics=Counters()) as compose:
            await compose.check_start(sites)
            # In demo mode the link-signing key is generated into the state folder on first use: here, once, so
            # the workers read one key instead of racing to write two.
            compose.ack_secret()

    asyncio.run(check())
    host, port = arguments[arguments.index("--host") + 1], int(arguments[arguments.index("--port") + 1])
    try:
        sock = listening_socket(host, port)
    except OSError as exc:
        raise OSError(f"could not serve HTTP on {host}:{port}: {exc}") from exc
    if settings.demo:
        banner(sites)
    url = f"http://{host}:{port}"
    log.info("serving the API", url=f"{url}/api/v1", docs=f"{url}/docs", workers=workers)
    return Supervisor(worker_command(arguments), sock, workers).run()


def long_lived(services: Sequence[Service]) -> Sequence[Service]:
    """What the API process built to start (site files, the app, the modules) lives as long as the process: frozen,
    the cyclic garbage collector no longer walks it on every full collection, which held requests up to 100 ms
    (benchmarks/bench_api.py, the slowest request of one client: 106-125 ms before, 8-30 ms after)."""
    gc.collect()
    gc.freeze()
    return services
