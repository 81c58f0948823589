"""Many simulated elevator controllers in one process, cheaply: the devices of the polling benchmark.

    python benchmarks/modbus_farm.py --ports 21000,21001 --units 20 [--model elev-gb-a]

Each port is a Modbus TCP gateway with units 1..`units` behind it, every unit a controller of `model` at rest on a
floor of its own, its registers laid out by the model's driver file (`simulators.register_image`, as the
simulators do). Only what a collector of that model reads is served (function 3/4 on the driver's blocks); the
answers are made once and then looked up, so thousands of polls a second cost this process little: its CPU is the
benchmark's load generator, not the system under test. Prints "ready" once every port listens.
"""

from __future__ import annotations

import argparse
import asyncio
import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collectors.modbus.driver import ModbusDriver
from collectors.registry import modbus_driver
from simulators.register_image import RegisterImage

_HEADER = struct.Struct(">HHHB")
_FUNCTION = {"holding": 3, "input": 4}
# A controller at rest: in service, on a floor, door closed, nobody inside.
AT_REST = {
    "service_mode": "normal",
    "moving": False,
    "direction": 0,
    "door": 0,
    "door_zone": True,
    "passenger": False,
    "load_pct": 0,
    "speed": 0.0,
    "power_source": 0,
    "fault_code": 0,
    "entrapment": False,
    "trips": 123456,
    "run_hours": 5432.1,
    "door_cycles": 234567,
    "firmware": 213,
    "floors_served": 30,
}


def answers(driver: ModbusDriver, unit: int) -> dict[bytes, bytes]:
    """The PDU of each request the collector makes (unit, function, start, count) -> the answer's PDU."""
    image = RegisterImage(driver)
    for name, value in AT_REST.items():
        if name in driver.by_name:
            image.publish(name, value)
    image.publish("floor", unit % 30)
    made = {}
    for block in driver.blocks:
        words = image.registers(block.table)
        data = [words.get(a, 0) for a in range(block.start, block.start + block.count)]
        function = _FUNCTION[block.table]
        request = struct.pack(">BBHH", unit, function, block.start, block.count)
        made[request] = struct.pack(f">BBB{len(data)}H", unit, function, 2 * len(data), *data)
    return made


class Gateway(asyncio.Protocol):
    def __init__(self, table: dict[bytes, bytes]) -> None:
        self.table = table
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= 12:
            tid, _, length, _ = _HEADER.unpack_from(self.buffer)
            frame, self.buffer = self.buffer[: 6 + length], self.buffer[6 + length :]
            pdu = self.table.get(frame[6:12])
            if pdu is None:  # illegal address
                pdu = bytes((frame[6], frame[7] | 0x80, 2))
            assert self.transport is not None
            self.transport.write(struct.pack(">HHH", tid, 0, len(pdu)) + pdu)


async def serve(ports: list[int], units: int, model: str) -> None:
    driver = modbus_driver(model)
    table: dict[bytes, bytes] = {}
    for unit in range(1, units + 1):
        table.update(answers(driver, unit))
    loop = asyncio.get_running_loop()
    servers = [await loop.create_server(lambda: Gateway(table), "127.0.0.1", port) for port in ports]
    print("ready", flush=True)
    await asyncio.gather(*(server.serve_forever() for server in servers))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ports", required=True)
    parser.add_argument("--units", type=int, required=True)
    parser.add_argument("--model", default="elev-gb-a")
    args = parser.parse_args()
    asyncio.run(serve([int(p) for p in args.ports.split(",")], args.units, args.model))


if __name__ == "__main__":
    main()
