"""Logging: structlog, key=value lines on stderr (JSON with FACMON_LOG_JSON=1)."""

from __future__ import annotations

import logging
import os
import sys

import structlog


def configure(level: str = "INFO") -> None:
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if os.environ.get("FACMON_LOG_JSON") == "1"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    logging.basicConfig(level=level, stream=sys.stderr, format="%(message)s")
    # Libraries' own chatter (every HTTP request, every Modbus connect retry, migration plugins) only shows when
    # debugging; facmon logs what matters once, with the device's name.
    debugging = level.upper() == "DEBUG"
    for name, quiet in (("pymodbus", logging.CRITICAL), ("httpx", logging.WARNING), ("alembic", logging.WARNING)):
        logging.getLogger(name).setLevel(logging.DEBUG if debugging else quiet)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
