"""The historian: readings and events from the MQTT backbone into InfluxDB, batched, through a durable buffer."""

from historian.buffer import BufferedLine, LineBuffer, RejectedLine
from historian.lines import event_line, reading_line, to_line
from historian.service import Historian
from historian.writer import InfluxWriter

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
