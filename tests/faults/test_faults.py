"""Crashes and outages on the production topology (tests/faults/estate.py) under load (tests/faults/load.py).

Each case plays 600 numbered vendor messages (900 when the gateway goes down) at 150 per second, raises a car
alarm on each of three elevators, injects one fault at a point of the load (counted in messages, not timed),
restarts what it broke, and then asserts (tests/faults/counts.py) that every message is in InfluxDB, every fault
has exactly one work order, and every alert reached the webhook receiver at least once under a stable
Idempotency-Key. Each prints its figures (run with -s to see them): messages sent, stored and lost, work orders,
alerts queued, webhook requests and the duplicates a receiver drops by key, and the time to recover.

The full-disk case mounts a small tmpfs for the gateway's state folder, so it runs only as root (as CI does).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.faults.counts import Figures, check, count, stored_numbers, warm_ups_heard
from tests.faults.estate import BARRIERS, Estate
from tests.faults.load import Load
from tests.support import wait_for

Inject = Callable[[Estate, Load], Coroutine[Any, Any, None]]
ALARMS_AT = [30, 90, 150]


async def _warm_up(estate: Estate, load: Load) -> None:
    """Until the gateway (just started) hears every barrier again: messages before that would be lost for want of a
    listener, which is no fault of facmon's."""
    before = await asyncio.to_thread(warm_ups_heard, estate)

    async def heard() -> bool:
        await load.warm_up()
        now = await asyncio.to_thread(warm_ups_heard, estate)
        return all(now.get(f"g{n}", 0) > before.get(f"g{n}", 0) for n in range(1, BARRIERS + 1))

    await wait_for(heard, 60, "the gateway to hear every barrier", every_s=0.5)


async def _play(case: str, tmp_path: Path, inject: Inject, *, total: int = 600) -> Figures:
    async with Estate(tmp_path, f"f{os.getpid()}{time.monotonic_ns() % 10**6}") as estate:
        load = Load(estate.mosquitto.port, estate.site_id, total=total)
        await _warm_up(estate, load)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(load.run())
            tg.create_task(load.car_alarms(ALARMS_AT))
            tg.create_task(inject(estate, load))
        recovered_at = time.monotonic()
        figures = await count(case, estate, load, recovered_at)
        # Cleared once counted: a fault raised and cleared while the gateway is down is never seen by polling.
        await load.clear_all()
        check(figures, estate, load)
        return figures


def _kill_and_restart(service: str, at: int, back_at: int) -> Inject:
    async def inject(estate: Estate, load: Load) -> None:
        await load.reached(at)
        await estate.kill(service)
        await load.reached(back_at)
        await estate.start(service)

    return inject


async def _nothing(estate: Estate, load: Load) -> None:
    await load.reached(load.total)


async def test_no_fault_loses_nothing(tmp_path: Path) -> None:
    """The control case: the same load and checks with nothing broken."""
    await _play("none", tmp_path, _nothing)


async def test_gateway_killed_and_restarted(tmp_path: Path) -> None:
    # 900 messages: the load goes on for a few seconds after the gateway is back.
    await _play("gateway SIGKILL", tmp_path, _kill_and_restart("gateway", 100, 200), total=900)


async def _historian_killed_on_its_backlog(estate: Estate, load: Load) -> None:
    await load.reached(150)
    await estate.kill("historian")
    await load.reached(300)
    # Started again, it resubscribes and the broker hands it the backlog: killed again as soon as it is healthy.
    await estate.start("historian")
    await estate.kill("historian")
    await load.reached(400)
    await estate.start("historian")


async def test_historian_killed_and_killed_again_right_after_it_resubscribes_to_its_backlog(tmp_path: Path) -> None:
    await _play("historian SIGKILL, twice", tmp_path, _historian_killed_on_its_backlog)


async def test_rules_worker_killed_and_restarted(tmp_path: Path) -> None:
    await _play("rules SIGKILL", tmp_path, _kill_and_restart("rules", 100, 250))


async def _notifier_killed_mid_request(estate: Estate, load: Load) -> None:
    receiver = estate.webhook.receiver
    # The receiver takes the first alert and holds its answer: the notifier is killed with the request in flight,
    # between the receiver accepting the alert and the notifier marking it delivered.
    receiver.delay_s = 4.0
    await receiver.arrived.wait()
    await estate.kill("notifier")
    receiver.delay_s = 0.0
    await load.reached(350)
    await estate.start("notifier")
    # The delivery the killed notifier had claimed is due again when its claim runs out (its send timeout and 5 s,
    # facmon.notifier.queue): the restarted notifier sends it again under the same key.
    keys = estate.webhook.keys
    await wait_for(lambda: asyncio.sleep(0, len(keys()) > len(set(keys()))), 90, "the claimed alert sent again")


async def test_notifier_killed_with_an_alert_in_flight(tmp_path: Path) -> None:
    figures = await _play("notifier SIGKILL", tmp_path, _notifier_killed_mid_request)
    # Delivered again after the restart, under the same key: the duplicate a receiver drops.
    assert figures.duplicates >= 1, figures.line()


async def _broker_killed(estate: Estate, load: Load) -> None:
    await load.reached(200)
    await estate.kill_broker()
    reconnects = load.reconnects
    # The load's devices notice (their publishes fail) before the broker comes back.
    await wait_for(lambda: asyncio.sleep(0, load.reconnects >= reconnects + 3), 30, "the load to see the broker gone")
    await estate.start_broker()


async def test_broker_killed_and_restarted(tmp_path: Path) -> None:
    await _play("broker SIGKILL", tmp_path, _broker_killed)


async def _influxdb_outage(estate: Estate, load: Load) -> None:
    await load.reached(150)
    await estate.stop_influxd()
    await load.reached(400)
    await estate.start_influxd()


async def test_influxdb_outage(tmp_path: Path) -> None:
    await _play("InfluxDB outage", tmp_path, _influxdb_outage)


async def _webhook_receiver_down(estate: Estate, load: Load) -> None:
    await estate.webhook.stop()
    await load.reached(450)
    await estate.webhook.start()


async def test_webhook_receiver_down_then_back(tmp_path: Path) -> None:
    await _play("webhook receiver down", tmp_path, _webhook_receiver_down)


def _damage(path: Path) -> None:
    """Garbage over the start of a SQLite file (its header and first pages), and its WAL if there is one."""
    for target in (path, path.with_name(path.name + "-wal")):
        if target.exists():
            with target.open("r+b") as f:
                f.write(os.urandom(8192))


async def _stopped_and_damaged(estate: Estate, load: Load, service: str, state_file: Path) -> None:
    """With the load paused and all of it stored: stop the service, garbage into its state file, start it again."""
    await load.reached(300)
    load.hold()
    await wait_for(lambda: asyncio.to_thread(lambda: load.sent <= stored_numbers(estate)), 60, "the load stored")
    await estate.stop(service)
    _damage(state_file)
    await estate.start(service)
    await _warm_up(estate, load)
    load.resume()


async def _damaged_outbox(estate: Estate, load: Load) -> None:
    outbox = estate.state_dir / "gateway" / f"outbox-{estate.site_id}.sqlite"
    await _stopped_and_damaged(estate, load, "gateway", outbox)


async def _damaged_buffer(estate: Estate, load: Load) -> None:
    await _stopped_and_damaged(estate, load, "historian", estate.state_dir / "historian" / "buffer.sqlite")


async def test_damaged_outbox_file(tmp_path: Path) -> None:
    await _play("damaged outbox", tmp_path, _damaged_outbox)


async def test_damaged_historian_buffer_file(tmp_path: Path) -> None:
    await _play("damaged historian buffer", tmp_path, _damaged_buffer)


@contextmanager
def _small_filesystem(folder: Path, size: str) -> Iterator[Path]:
    folder.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _fill(folder: Path) -> Path:
    """Write zeros into `folder` until its filesystem is full; the filler file."""
    filler = folder / "filler"
    # Unbuffered: a buffered file would try to write its remainder again on close, and fail there.
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


async def _disk_full(estate: Estate, load: Load) -> None:
    # Early, while the outbox's write-ahead log still has to grow to take a message.
    await load.reached(80)
    filler = await asyncio.to_thread(_fill, estate.state_dir / "gateway")
    await load.reached(330)
    filler.unlink()


@pytest.mark.skipif(os.geteuid() != 0, reason="a real full filesystem needs a tmpfs mount, which needs root")
async def test_gateway_state_folder_full(tmp_path: Path) -> None:
    with _small_filesystem(tmp_path / "state" / "gateway", "16m"):
        await _play("gateway disk full", tmp_path, _disk_full, total=900)
