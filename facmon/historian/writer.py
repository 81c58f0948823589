"""Writes the buffer to InfluxDB (facmon.kernel.influx, the v1 HTTP API) in batches, through outages.

What an answer means decides what happens to a batch:

- 2xx: written; the lines are acked.
- no answer (connection refused, timeout), 5xx, 429: InfluxDB is away or overloaded. The batch stays and is retried
  with capped backoff; its points keep their timestamps, so a late write lands where it belongs. The wait between
  tries is capped at `RETRY_WAIT_MAX_S` (4 s) whatever `backoff_max_s` asks for, so the buffer drains within 5 s of
  InfluxDB's return: a try every 4 s costs one refused connection, a 30 s cap would leave the buffer waiting half a
  minute after InfluxDB is back. The waits sleep on the injected clock.
- 401/403: a configuration problem (credentials, permissions). Retried with backoff and logged as an error:
  throwing data away because a password expired would be worse than waiting for someone to fix it.
- 404 "database not found": someone dropped the database; it is created again and the write retried.
- any other 4xx (400 field type conflict or unparsable line, 413 too large, ...): the batch itself is at fault.
  It is split in halves and each half written again, down to single lines; a single line InfluxDB still refuses is
  parked in the buffer's `rejected` table with InfluxDB's reason and counted. The good lines are all written, and
  one bad line costs about log2(batch size) extra requests. InfluxDB 1.x may already have stored the good lines of a
  refused batch (a "partial write"); writing them again stores the same points again, which changes nothing.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Iterator
from typing import NoReturn

import structlog

from facmon.historian.buffer import BufferedLine, LineBuffer
from facmon.kernel.backoff import backoff_delays
from facmon.kernel.clock import Clock, SystemClock
from facmon.kernel.influx import (
    InfluxAuthError,
    InfluxBadRequest,
    InfluxClient,
    InfluxDatabaseNotFound,
    InfluxError,
    InfluxSettings,
    InfluxUnreachable,
)
from facmon.kernel.metrics import Counters

log = structlog.get_logger(__name__)

# The longest wait between two tries of a write: InfluxDB back means written again within this (plus the request).
RETRY_WAIT_MAX_S = 4.0


class InfluxWriter:
    def __init__(
        self,
        influx: InfluxSettings,
        *,
        buffer: LineBuffer,
        metrics: Counters,
        batch_size: int = 5000,
        flush_interval_s: float = 1.0,
        backoff_max_s: float = 30.0,
        clock: Clock | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if flush_interval_s <= 0 or backoff_max_s <= 0 or influx.timeout_s <= 0:
            raise ValueError("flush_interval_s, backoff_max_s and the request timeout must be positive")
        self.influx = influx
        self.url = influx.url.rstrip("/")
        self.db = influx.db
        self.buffer = buffer
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.backoff_max_s = min(backoff_max_s, RETRY_WAIT_MAX_S)
        self._metrics = metrics
        self._clock = clock or SystemClock()
        self._rng = random.Random()
        self._wakeup = asyncio.Event()
        # Set while `run` waits for lines (nothing pending, or a batch not yet full nor old enough); clear while it
        # writes, backs off or is not running.
        self.idle = asyncio.Event()
        self._delays = self._fresh_delays()
        # The sizes of the latest successful writes, for benchmarks and the curious; bounded.
        self.recent_batch_sizes: deque[int] = deque(maxlen=1000)
        # Why the last request to InfluxDB failed; None since one succeeded (the historian's health).
        self.last_error: str | None = None

    def notify(self) -> None:
        """Lines were appended: wake the writer if a batch is now full."""
        self._wakeup.set()

    async def run(self) -> NoReturn:
        async with InfluxClient(self.influx) as influx:
            await self._create_database(influx)
            while True:
                await self._wait_for_batch()
                batch = self.buffer.take(self.batch_size)
                await self._write(influx, batch)
                self.buffer.ack(line.id for line in batch)

    async def _wait_for_batch(self) -> None:
        """Return when a full batch is waiting, or when the oldest waiting line has waited `flush_interval_s`."""
        first_seen: float | None = None
        while True:
            pending = self.buffer.pending()
            if pending >= self.batch_size:
                return
            now = self._clock.monotonic()
            timeout = self.flush_interval_s
            if pending:
                first_seen = now if first_seen is None else first_seen
                timeout = first_seen + self.flush_interval_s - now
                if timeout <= 0:
                    return
            self._wakeup.clear()
            self.idle.set()
            try:
                await self._wakeup_or_sleep(timeout)
            finally:
                self.idle.clear()

    async def _wakeup_or_sleep(self, seconds: float) -> None:
        """Return on a wake-up or once `seconds` have passed on the writer's clock (which may be a fake one)."""
        waiters = [asyncio.ensure_future(self._wakeup.wait()), asyncio.ensure_future(self._clock.sleep(seconds))]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            # Both are awaited, cancelled or done, so none is left pending when the writer is cancelled.
            await asyncio.gather(*waiters, return_exceptions=True)

    async def _write(self, influx: InfluxClient, batch: list[BufferedLine]) -> None:
        refusal = await self._post_until_answered(influx, batch)
        if refusal is None:
            self._metrics.inc("historian_points_written", len(batch))
            self._metrics.inc("historian_write_batches")
            self.recent_batch_sizes.append(len(batch))
            return
        if len(batch) == 1:
            self.buffer.reject(batch[0], refusal, self._clock.now())
            self._metrics.inc("historian_lines_rejected")
            log.warning("influxdb refused a line; parked it", line=batch[0].line[:300], reason=refusal)
            return
        half = len(batch) // 2
        await self._write(influx, batch[:half])
        await self._write(influx, batch[half:])

    async def _post_until_answered(self, influx: InfluxClient, batch: list[BufferedLine]) -> str | None:
        """Write the batch until InfluxDB takes it (None) or refuses it for what it contains (the reason)."""
        body = "\n".join(line.line for line in batch).encode()
        while True:
            try:
                await influx.write(body)
            except InfluxBadRequest as exc:
                return exc.detail
            except InfluxDatabaseNotFound as exc:
                # Someone dropped it: made again, and the write retried.
                await self._create_database(influx)
                await self._back_off_after(exc, lines=len(batch))
                continue
            except (InfluxUnreachable, InfluxAuthError) as exc:
                await self._back_off_after(exc, lines=len(batch))
                continue
            self._delays = self._fresh_delays()
            self.last_error = None
            return None

    async def _create_database(self, influx: InfluxClient) -> None:
        """CREATE DATABASE is idempotent in InfluxQL; retried until InfluxDB answers.

        A refusal (a user without admin rights, a 2.x/3.x server that maps databases itself) is logged, not fatal:
        the database may well exist, and the first write will tell.
        """
        while True:
            try:
                await influx.create_database()
            except InfluxUnreachable as exc:
                await self._back_off_after(exc, what="create database")
                continue
            except InfluxError as exc:
                log.warning("could not create the database; assuming it exists", db=self.db, detail=exc.detail)
                return
            self._delays = self._fresh_delays()
            log.info("influxdb database ready", db=self.db)
            return

    async def _back_off_after(self, exc: InfluxError, what: str = "write", **context: object) -> None:
        """Count and log a failed request, then wait before the next try."""
        if isinstance(exc, InfluxDatabaseNotFound):
            reason = "database_not_found"
        else:
            reason = "unreachable" if exc.status is None else f"http_{exc.status}"
        self._metrics.inc("historian_write_errors", reason=reason)
        self.last_error = f"{what}: {reason}"
        delay = next(self._delays)
        # Credentials and permissions need a person; an outage only needs time.
        level = log.error if isinstance(exc, InfluxAuthError) else log.warning
        level(
            f"influxdb {what} failed; will retry",
            reason=reason,
            detail=exc.detail[:300],
            pending=self.buffer.pending(),
            retry_in_s=round(delay, 2),
            **context,
        )
        await self._clock.sleep(delay)

    def _fresh_delays(self) -> Iterator[float]:
        return backoff_delays(min(0.1, self.backoff_max_s), self.backoff_max_s, self._rng)
