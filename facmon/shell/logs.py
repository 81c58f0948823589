"""Logging: structlog, key=value lines on stderr, or JSON lines (`--log-json`, FACMON_LOG_JSON=1) for a collector.

Libraries' own records (uvicorn, alembic, httpx, ...) go through the same renderer, so a JSON log is JSON throughout.
Every line is bounded: tracebacks are plain (never with locals) and any value longer than MAX_VALUE_CHARS is cut, so
no error, however large, makes the event loop spend seconds writing megabytes of log.
"""

from __future__ import annotations

import logging
import os
import sys

import structlog

_SHARED: list[structlog.typing.Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


# The longest value a log line carries (a traceback of a few dozen frames fits).
MAX_VALUE_CHARS = 16_000


def clip_values(_logger: object, _name: str, event_dict: structlog.typing.EventDict) -> structlog.typing.EventDict:
    for key, value in event_dict.items():
        if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
            event_dict[key] = f"{value[:MAX_VALUE_CHARS]} [{len(value) - MAX_VALUE_CHARS} characters cut]"
    return event_dict


def configure(level: str = "INFO", *, json_lines: bool | None = None) -> None:
    if json_lines is None:
        json_lines = os.environ.get("FACMON_LOG_JSON", "").lower() in ("1", "true", "yes")
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if json_lines
        else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*_SHARED, structlog.stdlib.ExtraAdder()],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,  # plain text: no locals, whatever is installed
                clip_values,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Libraries' own chatter (every HTTP request, every Modbus connect retry, migration plugins) only shows when
    # debugging; facmon logs what matters once, with the device's name.
    debugging = level.upper() == "DEBUG"
    for name, quiet in (("pymodbus", logging.CRITICAL), ("httpx", logging.WARNING), ("alembic", logging.WARNING)):
        logging.getLogger(name).setLevel(logging.DEBUG if debugging else quiet)
    structlog.configure(
        processors=[*_SHARED, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
