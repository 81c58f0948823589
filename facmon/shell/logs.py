"""Logging: structlog, key=value lines on stderr, or JSON lines (`--log-json`, FACMON_LOG_JSON=1) for a collector.

Libraries' own records (uvicorn, alembic, httpx, ...) go through the same renderer, so a JSON log is JSON throughout.
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


def configure(level: str = "INFO", *, json_lines: bool | None = None) -> None:
    if json_lines is None:
        json_lines = os.environ.get("FACMON_LOG_JSON", "").lower() in ("1", "true", "yes")
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if json_lines
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*_SHARED, structlog.stdlib.ExtraAdder()],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
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
