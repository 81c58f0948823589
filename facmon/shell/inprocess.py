"""The whole system in this process, around a block: for end-to-end tests and benchmarks.

    async with system_running(site, endpoints, state_dir=...) as api:
        ...  # api is the base URL of the API, e.g. http://127.0.0.1:8123/api/v1

The simulators are the caller's (start them first, so the collectors find the devices listening).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from facmon.estate.site import Site
from facmon.kernel.clock import Clock, SystemClock
from facmon.kernel.daemons import free_port
from facmon.kernel.metrics import Counters
from facmon.shell.compose import Composer, Endpoints
from facmon.shell.settings import Settings
from facmon.shell.up import run_system


@contextlib.asynccontextmanager
async def system_running(
    site: Site,
    endpoints: Endpoints,
    *,
    state_dir: Path,
    clock: Clock | None = None,
    metrics: Counters | None = None,
    start_timeout_s: float = 30.0,
    stop_timeout_s: float = 30.0,
    **settings: Any,
) -> AsyncIterator[str]:
    """Gateway, historian, rules, notifier and API for `site` until the block ends; yields the API's base URL.

    `settings` are Settings fields (e.g. `webhooks=[...]`); demo mode unless they say `demo=False`."""
    api_port = free_port()
    ready = asyncio.Event()
    options = Settings(state_dir=state_dir, **({"demo": True} | settings))
    compose = Composer(options, endpoints, clock=clock or SystemClock(), metrics=metrics or Counters())
    system = asyncio.create_task(
        run_system(compose, [site], api_port=api_port, on_ready=lambda _api: ready.set()),
    )
    try:
        waiter = asyncio.create_task(ready.wait())
        await asyncio.wait({waiter, system}, timeout=start_timeout_s, return_when=asyncio.FIRST_COMPLETED)
        if system.done():
            system.result()  # raises what stopped it
        if not ready.is_set():
            waiter.cancel()
            raise TimeoutError(f"the system did not start within {start_timeout_s} s")
        yield f"http://127.0.0.1:{api_port}/api/v1"
    finally:
        system.cancel()
        done, _ = await asyncio.wait({system}, timeout=stop_timeout_s)
        await compose.__aexit__(None, None, None)
        if not done:
            # A component that does not stop is a bug: say which, instead of hanging the caller.
            stuck = [t for t in asyncio.all_tasks() if not t.done() and t is not asyncio.current_task()]
            for task in stuck:
                task.print_stack(limit=8, file=sys.stderr)
            raise RuntimeError(f"the system did not stop within {stop_timeout_s} s; {len(stuck)} task(s) left")


async def demo_headers(api: str, username: str = "engineer") -> dict[str, str]:
    """Sign in to a demo-mode API as one of the demo accounts; the Authorization header to send."""
    from api.accounts.bootstrap import demo_password

    async with httpx.AsyncClient(base_url=api, timeout=10) as client:
        response = await client.post("/auth/login", json={"username": username, "password": demo_password(username)})
        response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}
