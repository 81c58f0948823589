"""The gateway's own Modbus TCP framing (collectors.modbus.tcp) against pymodbus's server (simulators.endpoint): the
registers of holding and input tables of several units behind one port, transaction ids past their 16 bits, the
Modbus exceptions a server answers with, and a server that goes away."""

from __future__ import annotations

import random

import pytest

from collectors.modbus.frames import LinkError
from collectors.modbus.tcp import ModbusConnection
from collectors.registry import modbus_driver
from facmon.kernel.ports import free_port
from simulators.endpoint import ModbusEndpoint
from tests.collectors.support import FrameSource

HOLDING = modbus_driver("elev-gb-a")  # holding 0+26, 100+2
INPUT = modbus_driver("elev-st-b")  # input 0+22


async def test_reads_the_words_pymodbus_serves_for_each_unit_and_table() -> None:
    rng = random.Random(15)
    sources = [FrameSource(HOLDING, unit=1), FrameSource(HOLDING, unit=2), FrameSource(INPUT, unit=7)]
    for source in sources:
        for table, words in source.words.items():
            source.set(table, {a: rng.randrange(0x10000) for a in words})
    endpoint = ModbusEndpoint("127.0.0.1", free_port(), sources)
    await endpoint.start()
    try:
        connection = await ModbusConnection.open("127.0.0.1", endpoint.port)
        # Past 65535 transaction ids wrap to 0, as the MBAP header is 16 bits.
        connection._tid = 0xFFFD
        for _ in range(3):
            for source in sources:
                for block in source.driver.blocks:
                    function = 3 if block.table == "holding" else 4
                    got = await connection.read(
                        function, block.start, block.count, unit=source.unit, timeout_s=2, what="read"
                    )
                    words = source.words[block.table]
                    assert got == [words[a] for a in range(block.start, block.start + block.count)]
        assert connection._tid < 0xFFFD
        connection.close()
    finally:
        await endpoint.stop()


async def test_a_modbus_exception_is_a_link_error_naming_its_code_and_the_connection_stays() -> None:
    source = FrameSource(HOLDING, unit=1)
    endpoint = ModbusEndpoint("127.0.0.1", free_port(), [source, FrameSource(HOLDING, unit=2)])
    await endpoint.start()
    try:
        connection = await ModbusConnection.open("127.0.0.1", endpoint.port)
        # Registers the device does not serve: exception 2.
        with pytest.raises(LinkError) as caught:
            await connection.read(3, 200, 2, unit=1, timeout_s=2, what="holding 200+2 unit 1")
        assert caught.value.kind == "exception_code"
        assert str(caught.value) == "holding 200+2 unit 1: exception code 2 (illegal address)"
        # A unit behind the gateway that does not answer: exception 11, as a real gateway says.
        await endpoint.set_answering(2, False)
        with pytest.raises(LinkError) as caught:
            await connection.read(3, 0, 26, unit=2, timeout_s=2, what="holding 0+26 unit 2")
        assert str(caught.value) == "holding 0+26 unit 2: exception code 11 (gateway no response)"
        assert connection.connected
        assert len(await connection.read(3, 0, 26, unit=1, timeout_s=2, what="read")) == 26
        connection.close()
    finally:
        await endpoint.stop()


async def test_a_server_that_goes_away_fails_the_request_at_once_as_closed() -> None:
    endpoint = ModbusEndpoint("127.0.0.1", free_port(), [FrameSource(HOLDING, unit=1)])
    await endpoint.start()
    connection = await ModbusConnection.open("127.0.0.1", endpoint.port)
    await connection.read(3, 0, 26, unit=1, timeout_s=2, what="read")
    await endpoint.stop()
    with pytest.raises(LinkError) as caught:
        await connection.read(3, 0, 26, unit=1, timeout_s=30, what="holding 0+26 unit 1")
    assert caught.value.kind in ("closed", "no_connection")
    assert not connection.connected
    with pytest.raises(ConnectionRefusedError):
        await ModbusConnection.open("127.0.0.1", endpoint.port)
