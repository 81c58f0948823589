"""The notifier as one service: the dispatcher (who is owed which message) and the sender (deliver the queue).

Both work from the work-order database alone, so the notifier runs beside the rules worker or on another machine,
and two notifiers over one database send nothing twice (facmon.notifier.dispatcher, facmon.notifier.queue).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from facmon.kernel.health import Check, Health
from facmon.notifier.base import Channel
from facmon.notifier.dispatcher import Dispatcher
from facmon.notifier.queue import Sender


class Notifier:
    name = "notifier"

    def __init__(self, dispatcher: Dispatcher, sender: Sender, *, interval_s: float = 1.0) -> None:
        self.dispatcher = dispatcher
        self.sender = sender
        self.interval_s = interval_s

    @property
    def channels(self) -> Mapping[str, Channel]:
        return self.sender.channels

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.dispatcher.run(self.interval_s), name="notifier-dispatcher")
            tg.create_task(self.sender.run(self.interval_s), name="notifier-sender")

    def health(self) -> Health:
        problems = [e for e in (self.dispatcher.last_error, self.sender.last_error) if e is not None]
        return Health(
            self.name,
            (
                Check("database", not problems, "; ".join(problems)),
                Check("channels", bool(self.channels), ", ".join(sorted(self.channels)) or "no channel configured"),
            ),
        )
