"""What was wrong with a Modbus TCP answer that did not answer the request.

A hostile or broken device answers with garbage, another transaction id or unit, a length that does not fit;
`diagnose` reads the bytes that came back, as the connection (`collectors.modbus.tcp`) kept them, against the
request sent and names the first thing wrong, so the dead letter and the comm_lost say why, not only that the
device was silent. Pure: bytes in, words out (and `LinkError`, what a failed request raises).

A Modbus TCP frame (ADU) is the MBAP header, transaction id (2 bytes), protocol id (2, always 0), length (2: the
bytes after it) and unit id (1), then the PDU: function code (1) and its data; an exception answer has the function
code with 0x80 set and one exception code byte.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

# The longest Modbus TCP ADU: 7 bytes of header and a PDU of at most 253.
MAX_ADU = 260
_HEADER = struct.Struct(">HHHB")


@dataclass(frozen=True)
class Diagnosis:
    """`kind`: a short label (metrics, dead-letter dedup); `detail`: what was wrong, for people."""

    kind: str
    detail: str


def diagnose(request: bytes, received: bytes, *, closed: bool) -> Diagnosis:
    """Why `received` (everything that came back for `request`, possibly nothing) is no answer to it; `closed`: the
    device closed the connection meanwhile."""
    if not received:
        if closed:
            return Diagnosis("closed", "the device closed the connection without answering")
        return Diagnosis("no_answer", "no answer")
    if len(received) < _HEADER.size:
        return Diagnosis("incomplete", f"{len(received)} bytes, less than a frame header")
    tid, protocol, length, unit = _HEADER.unpack_from(received)
    want_tid, _, _, want_unit = _HEADER.unpack_from(request) if len(request) >= _HEADER.size else (tid, 0, 0, unit)
    if protocol != 0:
        return Diagnosis("bad_frame", f"protocol id {protocol}, not 0: not a Modbus TCP frame")
    if tid != want_tid:
        return Diagnosis("wrong_transaction", f"transaction id {tid}, the request's is {want_tid}")
    if unit != want_unit:
        return Diagnosis("wrong_unit", f"unit {unit}, the request asked unit {want_unit}")
    if length < 2 or length > MAX_ADU - 6:
        return Diagnosis("bad_length", f"length field {length}, outside 2..{MAX_ADU - 6}")
    body = len(received) - 6
    if body < length:
        what = "closed the connection after" if closed else "sent only"
        return Diagnosis("incomplete", f"the device {what} {body + 6} of the {length + 6} bytes its header announces")
    if body > length:
        return Diagnosis("bad_length", f"length field {length}, but {body} bytes follow it")
    want_fc = request[7] if len(request) > 7 else received[7]
    if received[7] & 0x7F != want_fc:
        return Diagnosis("wrong_function", f"function code {received[7]}, the request's is {want_fc}")
    return Diagnosis("bad_frame", "a frame that is no answer to the request")


class LinkError(Exception):
    """A request that got no usable answer: not connected, timed out, or answered with a Modbus exception.

    `kind` labels what went wrong (`collectors.modbus.frames`: "no_answer", "wrong_transaction", "exception_code",
    ...; "no_connection" when no request went out); `frame` holds the bytes the device sent that were no answer
    (empty when none came)."""

    def __init__(self, message: str, *, kind: str = "no_connection", frame: bytes = b"") -> None:
        super().__init__(message)
        self.kind = kind
        self.frame = frame


def hex_frame(data: bytes) -> str:
    """Bytes as the hex a Modbus tool shows ("00 01 00 00 ..."), at most one ADU of them."""
    return data[:MAX_ADU].hex(" ") + (" ..." if len(data) > MAX_ADU else "")
