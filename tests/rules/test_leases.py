"""The lease of a task one worker of many does (rules.leases), on a real PostgreSQL database with workers racing for
it at the same moment."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from facmon.kernel.db import make_engine
from rules.leases import Lease

T0 = datetime(2026, 1, 15, 3, 0, tzinfo=UTC)
TTL = timedelta(seconds=15)


def test_one_of_four_racing_workers_holds_the_lease_until_it_stops_renewing(postgres_engine: Engine) -> None:
    url = postgres_engine.url.render_as_string(hide_password=False)
    engines = [make_engine(url) for _ in range(4)]
    try:
        leases = [Lease(engine, "fire_intact", f"w{n}", TTL) for n, engine in enumerate(engines)]
        barrier = threading.Barrier(len(leases))

        def race(lease: Lease, at: datetime) -> bool:
            barrier.wait()
            return lease.hold(at)

        with ThreadPoolExecutor(len(leases)) as pool:
            first = list(pool.map(race, leases, [T0] * len(leases)))
            assert first.count(True) == 1
            holder = leases[first.index(True)]
            # The holder renews; the others keep asking and are refused while it does.
            for second in range(1, 30):
                at = T0 + timedelta(seconds=second)
                assert list(pool.map(race, leases, [at] * len(leases))) == [lease is holder for lease in leases]
            # It stops (dies): once its lease has run out, exactly one other takes over.
            others = [lease for lease in leases if lease is not holder]
            barrier = threading.Barrier(len(others))
            late = T0 + timedelta(seconds=29) + TTL
            assert list(pool.map(race, others, [late] * len(others))) == [False] * len(others)
            taken = list(pool.map(race, others, [late + timedelta(seconds=1)] * len(others)))
        assert taken.count(True) == 1
        # Back under its own name, the old holder waits its turn like anyone.
        assert not holder.hold(late + timedelta(seconds=2))
    finally:
        for engine in engines:
            engine.dispose()
