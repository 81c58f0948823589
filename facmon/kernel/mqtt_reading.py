"""How facmon's MQTT client (facmon.kernel.mqtt) reads: ahead, and plain PUBLISH packets without paho.

Paho reads each received packet in three or more `recv` calls (its type byte, each byte of its length, then the
rest) and one packet per turn of the event loop, and hands each message through its callback dispatch. `ReadAhead`
stands in for two of its methods on one client: a read takes what the socket holds and every whole packet in it
is handled in the same turn, the plain PUBLISH packets decoded here. See facmon.kernel.mqtt for why.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode

__all__ = ["READ_AHEAD", "Deliver", "ReadAhead"]

# What one read takes from the socket at most: a few hundred vendor messages.
READ_AHEAD = 64 * 1024

# Where whole plain PUBLISH packets go: (topic, payload, qos, retain, packet id).
Deliver = Callable[[str, bytes, int, bool, int], None]


class ReadAhead:
    """Stands in for paho's `_sock_recv` and `loop_read` on one paho client: a read call takes what the socket holds
    (one `recv` of up to READ_AHEAD bytes) and hands paho every whole packet in it; a packet cut at the end waits,
    in paho's own partial-packet state, for the next call, so nothing stays buffered here between calls. Bytes
    read from a socket are never handed out for another (paho makes a new socket per connection).

    Whole plain PUBLISH packets (QoS 0 or 1, no MQTT 5 properties, a UTF-8 topic) that follow in the bytes read are
    taken here, between two packets of paho's, and handed to `deliver` (topic, payload, qos, retain, packet id):
    paho reads a packet a few bytes per call and hands each message through its callback dispatch, a dozen
    microseconds a message, most of a busy gateway's reading. Anything else is left where it is for paho."""

    def __init__(self, client: paho.Client, deliver: Deliver | None = None) -> None:
        self._client = client
        self._recv = client._sock_recv
        self._buf = b""
        self._pos = 0
        self._sock: object = None  # the socket `_buf` came from
        self._may_read = False  # one recv per loop_read
        self._paho_publish = client._handle_publish
        self._deliver = deliver

    def sock_recv(self, bufsize: int) -> bytes:
        client = self._client
        if self._pos >= len(self._buf) or self._sock is not client._sock:
            if not self._may_read:
                raise BlockingIOError
            self._may_read = False
            self._buf, self._pos, self._sock = b"", 0, client._sock
            self._buf = self._recv(READ_AHEAD)  # b"" when the connection ended: paho sees it as such
        out = self._buf[self._pos : self._pos + bufsize]
        self._pos += len(out)
        return out

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        client = self._client
        self._may_read = True
        while True:
            if client._sock is None:
                return MQTTErrorCode.MQTT_ERR_NO_CONN
            if self._deliver is not None and client._in_packet["command"] == 0 and self._sock is client._sock:
                rc = self._publishes(self._deliver)
                if rc > 0:
                    return client._loop_rc_handle(rc)
            rc = client._packet_read()
            if rc == MQTTErrorCode.MQTT_ERR_AGAIN:
                return MQTTErrorCode.MQTT_ERR_SUCCESS
            if rc > 0:
                return client._loop_rc_handle(rc)

    def _publishes(self, deliver: Deliver) -> MQTTErrorCode:
        """Deliver the whole plain PUBLISH packets at the read position, up to the first packet that is not one."""
        client = self._client
        buf, pos, end = self._buf, self._pos, len(self._buf)
        first = pos
        v5 = client._protocol == paho.MQTTv5
        rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        while pos < end and rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            header = buf[pos]
            qos = (header & 0x06) >> 1
            if header & 0xF0 != 0x30 or qos == 2:
                break
            length, shift, start = 0, 0, pos + 1
            while start < end and shift <= 21:
                byte = buf[start]
                length |= (byte & 0x7F) << shift
                start += 1
                shift += 7
                if not byte & 0x80:
                    break
            else:
                break  # cut, or a length paho refuses
            message = _plain_publish(buf[start : start + length], qos, v5) if start + length <= end else None
            if message is None:
                break
            self._pos = pos = start + length
            topic, mid, payload = message
            deliver(topic, payload, qos, bool(header & 0x01), mid)
            if qos == 1 and not client._manual_ack:
                rc = client._send_puback(mid)
        if pos != first:
            client._last_bytes_received = time.monotonic()  # as paho notes each packet it reads, for its keepalive
        return rc

    def handle_publish(self) -> MQTTErrorCode:
        """A PUBLISH paho read: see the module's docstring (paho's debug log line of it is left out)."""
        client = self._client
        header: int = client._in_packet["command"]
        packet = bytes(client._in_packet["packet"])  # bytes already: no copy
        qos = (header & 0x06) >> 1
        plain = _plain_publish(packet, qos, client._protocol == paho.MQTTv5) if qos < 2 else None
        if plain is None:
            return self._paho_publish()  # properties to decode, or malformed: paho says which
        topic, mid, payload = plain
        message = paho.MQTTMessage(mid, topic.encode())
        message.dup = bool(header & 0x08)
        message.qos = qos
        message.retain = bool(header & 0x01)
        message.payload = payload
        message.timestamp = time.monotonic()  # paho's clock
        client._handle_on_message(message)
        if qos == 1 and not client._manual_ack:
            return client._send_puback(message.mid)
        return MQTTErrorCode.MQTT_ERR_SUCCESS


def _plain_publish(packet: bytes, qos: int, v5: bool) -> tuple[str, int, bytes] | None:
    """(topic, packet id, payload) of the variable header and payload of a QoS 0 or 1 PUBLISH that carries no MQTT 5
    properties and whose topic is UTF-8 without wildcards; None for anything else (properties, an empty topic,
    malformed)."""
    length = len(packet)
    if length < 2:
        return None
    end = 2 + int.from_bytes(packet[:2])
    pos = end + (2 if qos else 0)
    if pos + v5 > length or (v5 and packet[pos] != 0) or end == 2:
        return None
    try:
        topic = packet[2:end].decode()
    except UnicodeDecodeError:
        return None
    if "+" in topic or "#" in topic:
        return None  # no topic a broker delivers; paho and aiomqtt say what they make of it
    return topic, int.from_bytes(packet[end:pos]) if qos else 0, packet[pos + v5 :]
