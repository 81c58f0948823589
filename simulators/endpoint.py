"""One Modbus TCP listener (host:port) answering for one or more simulated units.

A real estate often puts several controllers behind one Modbus TCP gateway, each with its own unit id; the
simulator does the same: one pymodbus server per host:port, one `SimDevice` per unit. The register layout comes
from the driver file, the values from the unit's `RegisterSource` at the moment a request is answered.
"""

from __future__ import annotations

import asyncio
from typing import Protocol, runtime_checkable

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from collectors.modbus.registers import Block, Table

_FC_TABLE: dict[int, Table] = {3: "holding", 4: "input"}


class RegisterMap(Protocol):
    """The register layout of a device model: the blocks a collector reads (and so a simulator must serve)."""

    @property
    def blocks(self) -> list[Block]: ...


@runtime_checkable
class RegisterSource(Protocol):
    """What a unit behind an endpoint provides: its register map, its live registers and its availability."""

    @property
    def unit(self) -> int: ...

    @property
    def driver(self) -> RegisterMap: ...

    def registers(self, table: Table) -> dict[int, int]: ...

    def response_delay_s(self) -> float: ...

    def attach(self, endpoint: ModbusEndpoint) -> None: ...


class ModbusEndpoint:
    def __init__(self, host: str, port: int, units: list[RegisterSource]) -> None:
        ids = [u.unit for u in units]
        if not units or len(set(ids)) != len(ids):
            raise ValueError(f"{host}:{port}: needs units with distinct unit ids, got {ids}")
        self.host = host
        self.port = port
        self._units = {u.unit: u for u in units}
        self._down: set[int] = set()
        self._server: ModbusTcpServer | None = None
        # Requests being answered right now (a response delay keeps them alive); cancelled at stop so no task
        # outlives the endpoint.
        self._inflight: set[asyncio.Task[object]] = set()

    @property
    def serving(self) -> bool:
        return self._server is not None

    @property
    def inflight(self) -> int:
        """How many requests are being answered right now (waiting out a response delay, say)."""
        return len(self._inflight)

    def answering(self, unit: int) -> bool:
        return self.serving and unit not in self._down

    async def start(self) -> None:
        if self._server is not None or len(self._down) == len(self._units):
            return
        server = ModbusTcpServer([self._device(u) for u in self._units.values()], address=(self.host, self.port))
        await server.serve_forever(background=True)
        self._server = server

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            # Closes the listening socket and every open connection: clients see the link go away.
            await server.shutdown()  # type: ignore[no-untyped-call]  # pymodbus leaves it unannotated
        for task in list(self._inflight):
            task.cancel()
        if self._inflight:
            await asyncio.wait(list(self._inflight))
        # Let the transports finish closing their sockets before anyone binds the port again.
        await asyncio.sleep(0)

    async def set_answering(self, unit: int, answering: bool) -> None:
        """Take one unit off the line or put it back.

        While some units still answer, a silent unit gets exception 0x0B (gateway target failed to respond), as
        a real gateway reports a dead controller behind it. When no unit answers, the port itself goes away.
        """
        if unit not in self._units:
            raise KeyError(f"{self.host}:{self.port} has no unit {unit}")
        if answering:
            self._down.discard(unit)
            await self.start()
        else:
            self._down.add(unit)
            if len(self._down) == len(self._units):
                await self.stop()

    def _device(self, source: RegisterSource) -> SimDevice:
        blocks = source.driver.blocks
        tables = {b.table for b in blocks}

        def span(table: Table) -> list[SimData]:
            # Every register a collector reads is valid (zeros in reserved gaps, as controllers answer); anything
            # outside the driver's blocks is an illegal address. Read-only: these are status registers.
            data = [
                SimData(b.start, count=b.count, datatype=DataType.REGISTERS, readonly=True)
                for b in blocks
                if b.table == table
            ]
            return data or [SimData(0, datatype=DataType.INVALID)]

        async def on_request(
            function_code: int,
            start_address: int,
            address: int,
            count: int,
            registers: list[int],
            set_values: list[int] | list[bool] | None,
        ) -> ExcCodes | None:
            task = asyncio.current_task()
            if task is not None:
                self._inflight.add(task)
            try:
                return await self._answer(source, tables, function_code, start_address, registers)
            finally:
                if task is not None:
                    self._inflight.discard(task)

        if tables == {"holding"}:
            return SimDevice(id=source.unit, simdata=span("holding"), action=on_request)
        # Holding and input registers are separate tables on this device: pymodbus's non-shared layout, whose
        # coil and discrete-input lists must not be empty.
        no_bits = [SimData(0, values=[False] * 16, datatype=DataType.BITS, readonly=True)]
        return SimDevice(
            id=source.unit, simdata=(no_bits, list(no_bits), span("holding"), span("input")), action=on_request
        )

    async def _answer(
        self,
        source: RegisterSource,
        tables: set[Table],
        function_code: int,
        start_address: int,
        registers: list[int],
    ) -> ExcCodes | None:
        delay = source.response_delay_s()
        if delay > 0:
            await asyncio.sleep(delay)
        if source.unit in self._down:
            return ExcCodes.GATEWAY_NO_RESPONSE
        table = _FC_TABLE.get(function_code)
        if table is None:
            return None
        if table not in tables:
            # A holding-only device shares one register space in pymodbus; do not serve it as input registers.
            return ExcCodes.ILLEGAL_ADDRESS
        # pymodbus answers from `registers` after this returns: fill them with the unit's values as of now.
        for address, word in source.registers(table).items():
            offset = address - start_address
            if 0 <= offset < len(registers):
                registers[offset] = word
        return None
