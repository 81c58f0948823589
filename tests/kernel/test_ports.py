"""Ports for the daemons we start come from outside the ephemeral range, never twice, and only free ones."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from facmon.kernel import ports
from facmon.kernel.daemons import free_port


def _ephemeral_low() -> int:
    text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
    return int(text.split()[0])


def test_ports_lie_below_the_ephemeral_range_and_never_repeat() -> None:
    handed = [free_port() for _ in range(300)]
    assert len(set(handed)) == len(handed)
    assert all(ports.LOW <= p < ports.HIGH for p in handed)
    assert max(handed) < _ephemeral_low()


def test_a_port_someone_listens_on_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        monkeypatch.setattr(ports, "_ports", iter([busy, busy + 1 if busy + 1 < 65536 else busy - 1]))
        assert free_port() != busy


def test_no_free_port_is_an_error_naming_the_range(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        monkeypatch.setattr(ports, "_ports", iter([busy] * 3))
        with pytest.raises(OSError, match=f"between {ports.LOW} and {ports.HIGH}"):
            free_port()


def test_parallel_workers_start_in_different_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    first = ports._start()
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    second = ports._start()
    size = (ports.HIGH - ports.LOW) // ports._SLICES
    assert (first - ports.LOW) // size != (second - ports.LOW) // size
