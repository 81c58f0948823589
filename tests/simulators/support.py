"""Helpers for the tests that talk Modbus to real servers: wait on real I/O with a deadline, and catch leaks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from pymodbus.client import AsyncModbusTcpClient

from collectors.modbus.driver import ModbusDriver
from facmon.kernel.model import Value


async def wait_until(predicate: Callable[[], bool], *, what: str, timeout_s: float = 5.0) -> None:
    """Poll `predicate` until it holds; fail naming `what` when the deadline passes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.01)


async def assert_no_leaked_tasks() -> None:
    """Fail if anything the test started is still running once it is over."""
    current = asyncio.current_task()
    # Closing transports and the last answers of a server finish within a few loop turns.
    for _ in range(20):
        leaked = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        if not leaked:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"tasks left running: {leaked}")


async def read_point_values(
    client: AsyncModbusTcpClient, driver: ModbusDriver, unit: int = 1
) -> tuple[dict[str, Value], list[str]]:
    """Every point of the driver, read over the wire the way the collector reads them."""
    values: dict[str, Value] = {}
    problems: list[str] = []
    for block in driver.blocks:
        read = client.read_holding_registers if block.table == "holding" else client.read_input_registers
        response = await read(block.start, count=block.count, device_id=unit)
        assert not response.isError(), f"{block}: {response}"
        decoded, bad = driver.decode_block(block, list(response.registers))
        values.update(decoded)
        problems.extend(bad)
    return values, problems
