"""The one way facmon makes an MQTT client: `mqtt_client(MqttSettings(...))`, an `MqttClient`.

`MqttClient` is aiomqtt's client (pinned below 3, whose API differs) with two additions:

- On Python 3.11 aiomqtt waits for acknowledgements with asyncio.wait_for, which drops a cancel that arrives in the
  same loop turn as the acknowledgement (fixed in 3.12, where wait_for is built on asyncio.timeout). A task that
  publishes in a loop (a simulated device's heartbeat, the gateway's publisher) then never stops, and whatever waits
  for it hangs. On 3.11 the client waits on asyncio.timeout instead, which keeps the cancel.
- `ready(n)`: the messages already received, without a loop turn and a task each, for a consumer that handles a
  burst at once (the `messages` iterator creates a task and waits on it for every message); `burst(n)` the same,
  waiting on one future when nothing has arrived yet, and raising MqttError as the iterator does when the
  connection ends.
- `manual_ack=True`: a received QoS 1/2 message is acknowledged to the broker only when `ack(message)` is called, so
  a message handled half-way when the process dies is delivered again to a persistent session. aiomqtt 2.x has no
  such option (empicano/aiomqtt#345), so this is the one place that reaches into its paho client. `ack_many`
  acknowledges a burst in one write: paho queues and sends each PUBACK alone (a system call and a wake-up of the
  event loop each, a third of a busy gateway's CPU in a profile); the write is made at once when paho has nothing
  queued before it on a plain (not TLS) socket, what the socket does not take left to paho.
- Reads ahead: paho reads each received packet in three or more `recv` calls (its type byte, each byte of its
  length, then the rest) and one packet per turn of the event loop. The client reads what the socket holds (up to
  READ_AHEAD bytes) in one call and hands paho every whole packet in it in the same turn; paho has no option for it
  (its socket reads are its own), so `ReadAhead` (facmon.kernel.mqtt_reading) stands in for two of its methods on
  our client only.
- Decodes a plain PUBLISH itself: under MQTT 5 paho gives every received message a `Properties` object, whose
  construction (tables of all property names, rebuilt each time) costs more than everything else about the
  packet. A QoS 0 or 1 PUBLISH that carries no properties is decoded here, its `properties` None; anything else
  (QoS 2, properties, a malformed packet) goes to paho's own decoder. The plain PUBLISH packets that follow whole
  in the bytes read are taken straight from them into the message queue, as aiomqtt's `on_message` would queue
  them, without paho's reading of each packet a few bytes per call and its callback dispatch (12 us a message
  before, 3.6 after, measured in-process); the order of the messages is kept with those paho reads in between.
"""

from __future__ import annotations

import asyncio
import math
import socket
import ssl
import struct
import sys
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from facmon.kernel.mqtt_reading import ReadAhead

__all__ = ["MqttClient", "MqttSettings", "MqttTls", "mqtt_client"]

T = TypeVar("T")

# Our acknowledgements and small publishes must not wait for Nagle's algorithm (see MqttSettings.tcp_nodelay).
_TCP_NODELAY = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
# MQTT 5: a session that is not clean lasts until the client comes back, however long it is away.
_SESSION_NEVER_EXPIRES = 0xFFFFFFFF
# A PUBACK without reason code or properties (MQTT 3.1.1, and MQTT 5's "success"): type, length 2, packet id.
_PUBACK = struct.Struct("!BBH")
_PUBACK_TYPE = 0x40


class MqttClient(aiomqtt.Client):
    """aiomqtt's client, keeping cancels on Python 3.11, with optional manual acknowledgement (`ack`)."""

    def __init__(self, hostname: str, port: int = 1883, *, manual_ack: bool = False, **options: Any) -> None:
        super().__init__(hostname, port, **options)
        self.manual_ack = manual_ack
        # Paho then sends the PUBACK of a QoS 1 message only when told to.
        self._client.manual_ack_set(manual_ack)
        reads = ReadAhead(self._client, self._received)
        # Set by `burst` while it waits for a message; done when one is queued.
        self._arrived: asyncio.Future[None] | None = None
        self._client._sock_recv = reads.sock_recv  # type: ignore[method-assign]
        self._client.loop_read = reads.loop_read  # type: ignore[method-assign]
        self._client._handle_publish = reads.handle_publish  # type: ignore[method-assign]

    def _received(self, topic: str, payload: bytes, qos: int, retain: bool, mid: int) -> None:
        """A plain PUBLISH read ahead: queued as aiomqtt queues what paho hands its `on_message` (paho's dispatch to
        per-topic callbacks is skipped: aiomqtt adds none)."""
        message = aiomqtt.Message(topic, payload, qos, retain, mid, None)
        try:
            self._queue.put_nowait(message)
        except asyncio.QueueFull:
            self._logger.warning("Message queue is full. Discarding message.")
        self._wake()

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        """What paho decoded itself: queued by aiomqtt, and `burst` woken."""
        super()._on_message(client, userdata, message)
        self._wake()

    def _ended(self, _: object) -> None:
        self._wake()

    def _wake(self) -> None:
        arrived = self._arrived
        if arrived is not None and not arrived.done():
            arrived.set_result(None)

    async def burst(self, limit: int) -> list[aiomqtt.Message]:
        """Up to `limit` messages received and not yet taken, oldest first, waiting for the first when there is none;
        MqttError when the connection ends meanwhile, as the `messages` iterator raises. Unlike the iterator, which
        makes a task and waits on it for every message, this waits only when nothing has arrived, on a future.
        Either way the event loop's other tasks get a turn before it returns, as with the iterator."""
        if not self._queue.empty():
            await asyncio.sleep(0)
        taken = self.ready(limit)
        while not taken:
            if self._disconnected.done():
                raise aiomqtt.MqttError("Disconnected during message iteration") from self._disconnected.exception()
            self._arrived = asyncio.get_running_loop().create_future()
            disconnected = self._disconnected
            # One future, which the end of the connection completes too (asyncio.wait on both costs twice as much).
            disconnected.add_done_callback(self._ended)
            try:
                await self._arrived
            finally:
                self._arrived = None
                disconnected.remove_done_callback(self._ended)
            taken = self.ready(limit)
        return taken

    def ack(self, message: aiomqtt.Message) -> None:
        """Acknowledge a received message to the broker (with `manual_ack`; without it paho already has)."""
        if self.manual_ack:
            self._client.ack(message.mid, message.qos)

    def ack_many(self, messages: Sequence[aiomqtt.Message]) -> None:
        """Acknowledge received messages to the broker, the PUBACKs of QoS 1 messages in one write."""
        if not self.manual_ack:
            return
        pubacks = b"".join(_PUBACK.pack(_PUBACK_TYPE, 2, m.mid) for m in messages if m.qos == 1)
        if pubacks:
            pubacks = pubacks[self._send_now(pubacks) :]
        if pubacks:
            # Queued as one packet: paho writes it, however long, as it writes one PUBACK (mid and qos as its own).
            self._client._packet_queue(_PUBACK_TYPE, pubacks, 0, 1)
        for message in messages:
            if message.qos == 2:
                self._client.ack(message.mid, message.qos)

    def _send_now(self, data: bytes) -> int:
        """Write `data` to a plain socket at once when paho has nothing queued before it; how much was written (the
        rest is paho's to write). Paho would have the event loop watch the socket for room first (for aiomqtt, a
        write to the loop's self-pipe, a turn, and two epoll changes for every write)."""
        paho_client = self._client
        sock = paho_client._sock
        if paho_client._out_packet or not isinstance(sock, socket.socket) or isinstance(sock, ssl.SSLSocket):
            return 0
        try:
            sent = sock.send(data)
        except OSError:
            return 0  # full, or broken: paho writes it, or finds the connection gone
        paho_client._last_msg_out = time.monotonic()  # as paho notes each write, for its keepalive
        return sent

    def ready(self, limit: int) -> list[aiomqtt.Message]:
        """Up to `limit` messages received and not yet taken, oldest first, without waiting (empty when none)."""
        taken: list[aiomqtt.Message] = []
        queue = self._queue
        while len(taken) < limit and not queue.empty():
            taken.append(queue.get_nowait())
        return taken

    if sys.version_info < (3, 12):

        async def _wait_for(self, fut: Awaitable[T], timeout: float | None) -> T:  # noqa: ASYNC109 (aiomqtt's API)
            if timeout is None:
                timeout = self.timeout
            # aiomqtt uses math.inf for "no timeout", asyncio uses None.
            try:
                async with asyncio.timeout(None if timeout == math.inf else timeout):
                    return await fut
            except TimeoutError:
                raise aiomqtt.MqttError("Operation timed out") from None


@dataclass(frozen=True)
class MqttTls:
    """TLS to a broker, for settings that carry it apart from the rest of a client's (`MqttSettings.with_tls`): the
    CA file (None: the system's CAs), the client's own certificate and key, and the hostname check's opt-out."""

    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    insecure: bool = False


@dataclass(frozen=True)
class MqttSettings:
    """Where a broker is and how to talk to it.

    `clean=False` asks for a persistent session (the broker keeps subscriptions and queues QoS 1 messages while the
    client is away); it needs a fixed `client_id`. MQTT 3.1.1 calls it clean session, MQTT 5 clean start plus a
    session expiry, which is set to never. TLS is on when `tls` is set or any of the files is named; without
    `tls_ca` the system's CAs are trusted. The broker's certificate must name `host` unless `tls_insecure` (an
    explicit opt-out, for a broker reached by an address its certificate does not name); the chain is checked
    always. `tls_cert` and `tls_key` are the client's own certificate, for a broker that asks for one.
    `max_inflight` is how many QoS 1/2 publishes may await their PUBACK at once; `tcp_nodelay` turns Nagle's
    algorithm off, for clients whose acknowledgements the broker's window waits on.
    """

    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    client_id: str | None = None  # None: the library makes one up
    clean: bool = True
    protocol: aiomqtt.ProtocolVersion = aiomqtt.ProtocolVersion.V311
    keepalive: int = 60
    timeout_s: float = 10.0
    tls: bool = False
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_insecure: bool = False
    will: aiomqtt.Will | None = None
    max_inflight: int | None = None
    tcp_nodelay: bool = False

    def __post_init__(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("a client certificate needs its key and a key its certificate (tls_cert, tls_key)")

    @property
    def uses_tls(self) -> bool:
        return self.tls or any((self.tls_ca, self.tls_cert, self.tls_key))

    @property
    def tls_settings(self) -> MqttTls | None:
        """The TLS part of these settings, or None without TLS."""
        if not self.uses_tls:
            return None
        return MqttTls(self.tls_ca, self.tls_cert, self.tls_key, self.tls_insecure)

    def with_tls(self, tls: MqttTls | None) -> MqttSettings:
        """These settings with `tls` (None: unchanged)."""
        if tls is None:
            return self
        return replace(self, tls=True, tls_ca=tls.ca, tls_cert=tls.cert, tls_key=tls.key, tls_insecure=tls.insecure)


def mqtt_client(settings: MqttSettings, *, manual_ack: bool = False) -> MqttClient:
    """A client for `settings`, not connected yet (`async with client:` connects; it may be entered again)."""
    s = settings
    session: dict[str, Any]
    if s.protocol == aiomqtt.ProtocolVersion.V5:
        properties = None
        if not s.clean:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = _SESSION_NEVER_EXPIRES
        session = {"clean_start": s.clean, "properties": properties}
    else:
        session = {"clean_session": s.clean}
    tls = aiomqtt.TLSParameters(ca_certs=s.tls_ca, certfile=s.tls_cert, keyfile=s.tls_key) if s.uses_tls else None
    client = MqttClient(
        s.host,
        s.port,
        manual_ack=manual_ack,
        username=s.username,
        password=s.password,
        identifier=s.client_id,
        protocol=s.protocol,
        keepalive=s.keepalive,
        timeout=s.timeout_s,
        will=s.will,
        tls_params=tls,
        tls_insecure=s.tls_insecure if s.uses_tls else None,
        max_inflight_messages=s.max_inflight,
        socket_options=[_TCP_NODELAY] if s.tcp_nodelay else None,
        **session,
    )
    if s.max_inflight is not None:
        # A full window in flight is by design; aiomqtt would warn past 10 pending publishes.
        client.pending_calls_threshold = s.max_inflight + 10
    return client
