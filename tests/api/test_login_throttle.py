"""The login throttle holds under concurrent guesses: through the real server, 60 wrong passwords sent at once get
at most the throttle's free failures checked against the hash; the rest are 429 without a hash check.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine

from api.accounts import store
from api.accounts.models import Role
from api.accounts.throttle import FREE_FAILURES
from facmon.kernel.daemons import free_port
from facmon.kernel.httpserve import embedded
from tests.api.test_auth import PASSWORD, user
from tests.api.test_site_scope import app, clock  # noqa: F401  (fixtures)

GUESSES = 60


class CountingVerify:
    """The real password check, counted (logins run in the server's thread pool, hence the lock)."""

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()
        self._real = store.verify_password

    def __call__(self, password_hash: str | None, password: str) -> bool:
        with self._lock:
            self.calls += 1
        return self._real(password_hash, password)


@pytest.fixture
async def server(app: FastAPI) -> AsyncIterator[str]:  # noqa: F811
    port = free_port()
    served = embedded(app, "127.0.0.1", port)
    task = asyncio.create_task(served.serve_until_cancelled())
    async with asyncio.timeout(30):
        await served.wait_started(task)
    yield f"http://127.0.0.1:{port}/api/v1"
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_concurrent_wrong_guesses_check_no_more_hashes_than_the_free_failures(
    server: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    user(engine, "ops", Role.ADMIN)
    checks = CountingVerify()
    monkeypatch.setattr(store, "verify_password", checks)
    limits = httpx.Limits(max_connections=GUESSES)
    async with httpx.AsyncClient(base_url=server, timeout=120, limits=limits) as client:
        guesses = [{"username": "ops", "password": f"guess number {i:02d}"} for i in range(GUESSES)]
        answers = await asyncio.gather(*(client.post("/auth/login", json=guess) for guess in guesses))
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [401] * FREE_FAILURES + [429] * (GUESSES - FREE_FAILURES)
        assert checks.calls == FREE_FAILURES
        assert all(int(a.headers["retry-after"]) >= 1 for a in answers if a.status_code == 429)
        # Still throttled for the right password now, and the server answers.
        right = await client.post("/auth/login", json={"username": "ops", "password": PASSWORD})
        assert right.status_code == 429
        assert checks.calls == FREE_FAILURES
        assert (await client.get("/health")).status_code == 200
