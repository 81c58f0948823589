"""The one way facmon makes an MQTT client: `mqtt_client(MqttSettings(...))`, an `MqttClient`.

`MqttClient` is aiomqtt's client (pinned below 3, whose API differs) with two additions:

- On Python 3.11 aiomqtt waits for acknowledgements with asyncio.wait_for, which drops a cancel that arrives in the
  same loop turn as the acknowledgement (fixed in 3.12, where wait_for is built on asyncio.timeout). A task that
  publishes in a loop (a simulated device's heartbeat, the gateway's publisher) then never stops, and whatever waits
  for it hangs. On 3.11 the client waits on asyncio.timeout instead, which keeps the cancel.
- `ready(n)`: the messages already received, without a loop turn and a task each, for a consumer that handles a
  burst at once (the `messages` iterator creates a task and waits on it for every message).
- `manual_ack=True`: a received QoS 1/2 message is acknowledged to the broker only when `ack(message)` is called, so
  a message handled half-way when the process dies is delivered again to a persistent session. aiomqtt 2.x has no
  such option (empicano/aiomqtt#345), so this is the one place that reaches into its paho client.
"""

from __future__ import annotations

import asyncio
import math
import socket
import sys
from collections.abc import Awaitable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

__all__ = ["MqttClient", "MqttSettings", "MqttTls", "mqtt_client"]

T = TypeVar("T")

# Our acknowledgements and small publishes must not wait for Nagle's algorithm (see MqttSettings.tcp_nodelay).
_TCP_NODELAY = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
# MQTT 5: a session that is not clean lasts until the client comes back, however long it is away.
_SESSION_NEVER_EXPIRES = 0xFFFFFFFF


class MqttClient(aiomqtt.Client):
    """aiomqtt's client, keeping cancels on Python 3.11, with optional manual acknowledgement (`ack`)."""

    def __init__(self, hostname: str, port: int = 1883, *, manual_ack: bool = False, **options: Any) -> None:
        super().__init__(hostname, port, **options)
        self.manual_ack = manual_ack
        # Paho then sends the PUBACK of a QoS 1 message only when told to.
        self._client.manual_ack_set(manual_ack)

    def ack(self, message: aiomqtt.Message) -> None:
        """Acknowledge a received message to the broker (with `manual_ack`; without it paho already has)."""
        if self.manual_ack:
            self._client.ack(message.mid, message.qos)

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
