"""Poll one Modbus device on a fixed schedule and turn what it says into Readings and Events.

One poller for every Modbus device; what its registers mean is its family's `Interpreter`
(`collectors.modbus.interpreter`): elevator controllers and fire alarm panels read and interpret differently, and
are polled alike. Each poller is its own task, so a dead device never delays the schedule of another; pollers of
units behind the same host:port share one `ModbusLink` (one request in flight per connection). A poll reads the
interpreter's blocks in turn and emits what it makes of them. Its first answer since start is reported as
comm_restored (first contact), a device that has not answered for `comm_grace_s` once as comm_lost, then once as
comm_restored when it answers again, and a device answering in over half its timeout a few polls in a row as slow
(status `comm_slow`, `collectors.modbus.polling`). A value the interpreter refuses is left out,
counted every poll, and parked as a dead letter with the words it came in, once per point and reason so a stuck bad
value cannot flood. A device that answers wrongly (garbage, another transaction or unit, a Modbus exception, half a
frame: `collectors.modbus.frames`) is parked likewise, with the bytes it sent and what was wrong with them, and its
comm_lost says why (`data["reason"]`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import structlog

from collectors.modbus.frames import LinkError, hex_frame
from collectors.modbus.interpreter import Interpreter, Refusal
from collectors.modbus.link import BAD_ANSWERS, ModbusLink, ModbusLinks
from collectors.modbus.polling import CommWatch, SlowWatch, poll_on_schedule
from collectors.modbus.registers import Block
from collectors.modbus.slots import phase_s, slot_start, until_next_slot_s, with_slot_id
from facmon.kernel.clock import Clock
from facmon.kernel.metrics import Counters
from facmon.kernel.model import DeadLetter, DeviceRef, Emit, EmitMany, Event, ModbusAddress, Reading, Reject

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class PollTiming:
    """How often a device is polled, how long it may be silent before it is reported lost, how long one request may
    take, and the longest wait before reconnecting to it (never longer than the poll interval). `slotted`: polls
    carry the start of the device's slot (`collectors.modbus.slots`); off for a poller asked to poll at chosen
    moments (the demo's past year), whose polls carry the moment itself."""

    interval_s: float
    comm_grace_s: float
    timeout_s: float = 1.0
    backoff_max_s: float = 30.0
    slotted: bool = True

    def __post_init__(self) -> None:
        if self.interval_s <= 0 or self.timeout_s <= 0:
            raise ValueError("interval_s and timeout_s must be positive")


class ModbusPoller:
    def __init__(
        self,
        ref: DeviceRef,
        interpreter: Interpreter,
        address: ModbusAddress,
        timing: PollTiming,
        *,
        emit: Emit,
        clock: Clock,
        metrics: Counters,
        reject: Reject | None = None,
        links: ModbusLinks | None = None,
        emit_many: EmitMany | None = None,
    ) -> None:
        self.ref = ref
        self.interpreter = interpreter
        self.address = address
        self.timing = timing
        self._emit = emit
        # What one poll found goes out in one call when the gateway can take it so (gateway.put_batch): a fire
        # panel's snapshot of a few hundred points must not wait for a few hundred writes, holding up its next poll.
        self._emit_many = emit_many
        self._reject = reject
        self._clock = clock
        self._metrics = metrics
        # None: the pool of the running event loop, so pollers of one gateway share it without being told.
        self._links = links
        self._log = log.bind(device=ref.device, address=f"{address.host}:{address.port}/{address.unit}")
        self._comm = CommWatch(ref, comm_grace_s=timing.comm_grace_s, emit=emit, clock=clock, log=self._log)
        # The device's place in each poll interval: its polls start there and its readings carry the slot's start,
        # so two gateways polling it store each poll once (collectors.modbus.slots).
        self._phase_s = phase_s(ref, timing.interval_s)
        self._slow = SlowWatch(ref, timeout_s=timing.timeout_s, emit=emit, clock=clock, log=self._log)
        # Values being refused, by where they belong: the reason, and how many polls in a row.
        self._rejecting: dict[str, tuple[str, int]] = {}
        # The kind of wrong answer the device gives poll after poll (LinkError.kind); None while it answers well.
        self._answering_wrongly: str | None = None

    @property
    def name(self) -> str:
        return f"poll-{self.ref.device}"

    async def run(self) -> None:
        """Poll until cancelled; device and network problems become events and metrics, never exceptions."""
        self._comm.start()
        await poll_on_schedule(
            self.poll,
            self.address,
            interval_s=self.timing.interval_s,
            device=self.ref.device,
            metrics=self._metrics,
            backoff_max_s=self.timing.backoff_max_s,
            links=self._links,
            first_delay_s=until_next_slot_s(self._clock.now(), self.timing.interval_s, self._phase_s),
        )

    def stamp(self) -> datetime:
        """The time a poll now stamps on what it reads: the start of the device's current slot (or now, unslotted)."""
        if not self.timing.slotted:
            return self._clock.now()
        return slot_start(self._clock.now(), self.timing.interval_s, self._phase_s)

    async def poll(self, link: ModbusLink) -> None:
        """One poll: the Readings and Events it implies, or a failure counted against comm status."""
        self._metrics.inc("modbus_polls", device=self.ref.device)
        # The slot the poll starts in: its answer, however late, belongs to it.
        ts = self.stamp()
        frame: list[tuple[Block, list[int]]] = []
        slowest_s = 0.0
        try:
            for block in self.interpreter.blocks:
                registers = await link.read(
                    block.table, block.start, block.count, unit=self.address.unit, timeout_s=self.timing.timeout_s
                )
                slowest_s = max(slowest_s, link.last_response_s)
                frame.append((block, registers))
        except LinkError as exc:
            # The remaining blocks are not tried: on a shared link they would only hold up the other units, and
            # half a frame is not a frame (a fire panel's counts would be wrong).
            self._metrics.inc("modbus_poll_failures", device=self.ref.device)
            await self._bad_answer(exc)
            await self._comm.silent(str(exc), exc.kind)
            return
        self._answering_wrongly = None
        meaning = self.interpreter.interpret(self.ref, frame, ts, self._clock.monotonic())
        await self._comm.answered(ts)
        await self._slow.answered(slowest_s)
        messages: list[Reading | Event] = []
        for message in meaning.messages:
            if isinstance(message, Event) and self.timing.slotted:
                message = with_slot_id(message)
                self._log.info(
                    "device event",
                    type=message.type.value,
                    code=message.code,
                    point=message.point,
                    message=message.message,
                )
            messages.append(message)
        if self._emit_many is not None:
            await self._emit_many(messages)
        else:
            for message in messages:
                await self._emit(message)
        for letter in self._refused(meaning.refused, ts):
            if self._reject is not None:
                await self._reject(letter)

    async def _bad_answer(self, exc: LinkError) -> None:
        """A wrong answer (not silence) is counted every poll, and parked as a dead letter with the bytes that came
        and what was wrong with them when it starts or changes its kind, so a device answering garbage every poll
        cannot flood."""
        if exc.kind not in BAD_ANSWERS:
            return
        self._metrics.inc("modbus_bad_answers", device=self.ref.device, reason=exc.kind)
        if self._answering_wrongly == exc.kind:
            return
        self._answering_wrongly = exc.kind
        self._log.warning("modbus answer refused", reason=str(exc), frame=hex_frame(exc.frame[:32]))
        if self._reject is not None:
            letter = DeadLetter.of(
                site=self.ref.site,
                ref=self.ref,
                ts=self._clock.now(),
                source="modbus",
                reason=str(exc),
                payload=hex_frame(exc.frame) if exc.frame else None,
            )
            await self._reject(letter)

    def _refused(self, refused: list[Refusal], ts: datetime) -> list[DeadLetter]:
        """Count this poll's refusals; dead letters for those that start or change their reason."""
        now = {r.where for r in refused}
        for where in [w for w in self._rejecting if w not in now]:
            _, polls = self._rejecting.pop(where)
            self._log.info("modbus value accepted again", point=where, rejected_polls=polls)
        letters = []
        for r in refused:
            self._metrics.inc("modbus_rejected_values", device=self.ref.device, point=r.where)
            previous, polls = self._rejecting.get(r.where, ("", 0))
            self._rejecting[r.where] = (r.reason, polls + 1)
            if previous == r.reason:
                continue
            self._log.warning("modbus value rejected", point=r.where, reason=r.reason)
            letters.append(
                DeadLetter(site=self.ref.site, ref=self.ref, ts=ts, source="modbus", reason=r.reason, payload=r.payload)
            )
        return letters
