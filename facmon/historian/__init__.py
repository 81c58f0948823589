"""The historian: readings and events from the MQTT backbone into InfluxDB, batched, through a durable buffer."""

from facmon.historian.buffer import BufferedLine, LineBuffer, RejectedLine
from facmon.historian.lines import event_line, reading_line, to_line
from facmon.historian.service import Historian
from facmon.historian.writer import InfluxWriter

__all__ = [
    "BufferedLine",
    "Historian",
    "InfluxWriter",
    "LineBuffer",
    "RejectedLine",
    "event_line",
    "reading_line",
    "to_line",
]
