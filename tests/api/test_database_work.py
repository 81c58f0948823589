"""The busiest reads of the API run at most `limit` at once per process (api.deps.DatabaseWork), the others waiting
their turn in order."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from api.deps import DatabaseWork


@pytest.mark.parametrize("limit", [1, 2])
async def test_no_more_than_the_limit_run_at_once_and_in_order(limit: int) -> None:
    work = DatabaseWork(limit)
    lock = threading.Lock()
    running, most, started = 0, 0, []

    def read(n: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
            started.append(n)
        time.sleep(0.02)  # a read that takes a while, in its thread, so that others would overlap it if let
        with lock:
            running -= 1
        return n * 10

    results = await asyncio.gather(*(work.run(read, n) for n in range(6)))
    assert results == [n * 10 for n in range(6)]
    assert most == limit
    if limit == 1:
        assert started == list(range(6))
