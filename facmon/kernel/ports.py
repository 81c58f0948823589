"""Free loopback ports for daemons we start (`facmon up`, the test fixtures), outside the kernel's ephemeral range.

Asking the kernel for port 0 hands out a port of the ephemeral range (32768-60999 on Linux), the same range every
outgoing connection takes its local port from: between choosing a port and the daemon binding it, any client
connection of any process can take it, and the daemon fails to start. Ports here come from below that range, in
order, never twice in one process; concurrent processes (parallel test workers, the CLI processes they start) begin
at different places, and every port is checked free by binding it before it is handed out.
"""

from __future__ import annotations

import itertools
import os
import socket
import threading
from collections.abc import Iterator

LOW = 20000  # above the demo estate's fixed ports (15021-15032, 18086, 18830)
HIGH = 32000  # below Linux's default ephemeral range (ip_local_port_range starts at 32768)
_SLICES = 8  # parallel test workers each take their own slice of the range


def _start() -> int:
    """Where this process begins: a slice per test worker (gw0, gw1, ...), a place in it by process id."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    digits = "".join(c for c in worker if c.isdigit())
    size = (HIGH - LOW) // _SLICES
    first = LOW + (int(digits) % _SLICES) * size if digits else LOW
    return first + (os.getpid() * 7919) % size


def _sequence() -> Iterator[int]:
    span = HIGH - LOW
    first = _start() - LOW
    return (LOW + (first + n) % span for n in itertools.count())


_ports = _sequence()
_lock = threading.Lock()


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """A loopback port no one listens on now, not handed out before by this process."""
    with _lock:
        for port in itertools.islice(_ports, HIGH - LOW):
            if _bindable(port):
                return port
    raise OSError(f"no free loopback port between {LOW} and {HIGH}")
