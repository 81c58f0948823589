"""A stand-in for the rules worker: opens work orders through the store (rules.store) as fast as it can, one
transaction each, until SIGTERM. After each commit it prints `<work order id> <time.monotonic()>`, so a test can
tell which commits fell inside a backup's copy (CLOCK_MONOTONIC is the same clock in every process).

    python -m tests.shell.ops.inserter DB_URL
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from datetime import timedelta

from facmon.kernel.db import make_engine
from rules.engine import load_rules
from tests.shell.ops.support import START, open_work_order


def main(url: str) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    engine = make_engine(url)
    rules = load_rules()
    print("ready", flush=True)
    index = 0
    while not stop.is_set():
        work_order_id = open_work_order(engine, rules, index, START + timedelta(seconds=index))
        print(f"{work_order_id} {time.monotonic()}", flush=True)
        index += 1
    engine.dispose()


if __name__ == "__main__":
    main(sys.argv[1])
