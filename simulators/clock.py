"""The time simulated devices live in: their timers (a car's ticks, an arm's travel, heartbeats, a scenario's cues)
wait on a `Clock` in simulated seconds.

By default simulated time runs `speed` times faster than the wall clock (the kernel's `ScaledClock`); tests hand a
device a `FakeClock` and advance it instead. Waits for the network (reconnecting to a broker, a slow Modbus answer)
stay on real time.
"""

from __future__ import annotations

from facmon.kernel.clock import Clock, FakeClock, ScaledClock, SystemClock


def simulated_clock(speed: float) -> Clock:
    """Simulated time from now on, `speed` times faster than the wall clock; at speed 0 it stands still (a frozen
    elevator car)."""
    if speed < 0:
        raise ValueError(f"speed must be >= 0, got {speed}")
    now = SystemClock().now()
    if speed == 0:
        return FakeClock(now)  # never advanced
    return ScaledClock(now, speed)
