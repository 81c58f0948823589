"""Running services as a process: until SIGINT or SIGTERM, then a clean stop and exit status 0.

systemd and container runtimes stop a service with SIGTERM; a terminal with Ctrl-C (SIGINT). Either cancels every
task, so outboxes and buffers are closed and connections said goodbye to, and the command returns normally. A
service that fails on its own ends the process with its error instead, and the supervisor restarts it.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import structlog

from facmon.kernel.health import Health, Service, combined, probe_app
from facmon.kernel.httpserve import embedded
from facmon.kernel.metrics import Counters

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Probe:
    """Where to serve /health and /metrics; port 0: not served."""

    host: str = "127.0.0.1"
    port: int = 0


def health_of(services: Sequence[Service]) -> Callable[[], Health]:
    if len(services) == 1:
        return services[0].health
    return lambda: combined([s.health() for s in services])


def _healthy(service: Service) -> Callable[[], float]:
    return lambda: 1.0 if service.health().ok else 0.0


async def until_signalled(work: Awaitable[None]) -> bool:
    """Run `work` until it ends or SIGINT/SIGTERM arrives; True when stopped by a signal."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(work)
    stopped = False

    def stop(signum: int) -> None:
        nonlocal stopped
        if not stopped:
            stopped = True
            log.info("stopping", signal=signal.Signals(signum).name)
            task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop, sig)
    try:
        await task
    except asyncio.CancelledError:
        if not stopped:
            raise
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return stopped


async def run_services(services: Sequence[Service], *, metrics: Counters, probe: Probe | None = None) -> None:
    """Run `services` (and their probe page) until one fails or the task is cancelled."""
    for service in services:
        # 1 while every check of the service passes: what a Prometheus alert rule watches.
        metrics.gauge(
            f"{service.name}_healthy", _healthy(service), f"1 while every health check of {service.name} passes"
        )
    async with asyncio.TaskGroup() as tg:
        for service in services:
            tg.create_task(service.run(), name=service.name)
        if probe is not None and probe.port:
            server = embedded(probe_app(metrics, health_of(services)), probe.host, probe.port)
            served = tg.create_task(server.serve_until_cancelled(), name="probe")
            await server.wait_started(served)
            log.info("health and metrics", url=f"http://{probe.host}:{probe.port}/health")
