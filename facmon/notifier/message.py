"""The text of an alert, short enough for a phone's lock screen: what, where, how urgent, the SLA time left, and the
one-tap acknowledge link.

Pure functions of a Notification. Every phrase comes from a template table per language, so a Chinese table is one
more entry in TEMPLATES, not new code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from facmon.notifier.base import Notification

__all__ = ["TEMPLATES", "Templates", "render_subject", "render_text", "sla_phrase"]


@dataclass(frozen=True)
class Templates:
    """The phrases of one language. `{placeholders}` are filled with str.format."""

    # Priority and reason labels; a value not in the table is shown as it is.
    priorities: dict[str, str]
    reasons: dict[str, str]
    # What an SLA clock waits for, by the clock's name in facmon/workorders/library/sla.yaml.
    clocks: dict[str, str]
    clock_fallback: str
    # The same clocks as nouns for a missed deadline ("on-site deadline passed"); the clock's name otherwise.
    clock_nouns: dict[str, str]
    subject: str
    where: str
    what: str
    what_fire_alarm: str
    left: str
    passed: str
    due_now: str
    ack: str


EN = Templates(
    priorities={"emergency": "EMERGENCY", "urgent": "URGENT"},
    reasons={
        "opened": "new",
        "reminder": "reminder",
        "escalation": "escalated",
        "breach": "deadline missed",
        "digest": "digest",
        "withdrawn": "all clear: the deadline was met after all, the missed-deadline alert is withdrawn",
    },
    clocks={
        "acknowledge": "to acknowledge",
        "on_site": "to be on site",
        "statutory_on_site": "to be on site (statutory)",
        "repair": "to repair",
        "resolve": "to resolve",
    },
    clock_fallback="on the {clock} clock",
    clock_nouns={
        "acknowledge": "acknowledge",
        "on_site": "on-site",
        "statutory_on_site": "statutory on-site",
        "repair": "repair",
        "resolve": "resolve",
    },
    subject="[{priority}] {title} - {device}",
    where="{site} / {building} / {device}",
    what="{fault}, work order #{work_order_id} ({reason})",
    what_fire_alarm="FIRE ALARM, {fault} (fire alarm #{fire_alarm_id}): go and confirm, or mark it a false alarm",
    left="{minutes} min left {clock}",
    passed="{clock_noun} deadline passed {minutes} min ago",
    due_now="due now {clock}",
    ack="Acknowledge: {url}",
)

TEMPLATES: dict[str, Templates] = {"en": EN}


def _clock_phrase(templates: Templates, clock: str) -> str:
    return templates.clocks.get(clock) or templates.clock_fallback.format(clock=clock)


def sla_phrase(clock: str | None, left_s: float | None, *, lang: str = "en") -> str | None:
    """ "12 min left to be on site", "on-site deadline passed 3 min ago"; None without a clock."""
    if clock is None or left_s is None:
        return None
    templates = TEMPLATES[lang]
    phrase = _clock_phrase(templates, clock)
    if left_s >= 60:
        # Round down while time is left: "1 min left" with 119 s is the safe side of the truth.
        return templates.left.format(minutes=math.floor(left_s / 60), clock=phrase)
    if left_s > -60:
        return templates.due_now.format(clock=phrase)
    noun = templates.clock_nouns.get(clock, clock)
    return templates.passed.format(clock_noun=noun, minutes=math.floor(-left_s / 60))


def render_subject(notification: Notification, *, lang: str = "en") -> str:
    t = TEMPLATES[lang]
    n = notification
    return t.subject.format(priority=t.priorities.get(n.priority, n.priority), title=n.title, device=n.device)


def render_text(notification: Notification, *, lang: str = "en") -> str:
    """The whole message: subject line, where, what, the SLA time left and the acknowledge link, one per line."""
    t = TEMPLATES[lang]
    n = notification
    lines = [
        render_subject(n, lang=lang),
        t.where.format(site=n.site, building=n.building, device=n.device),
        t.what.format(fault=n.fault, work_order_id=n.work_order_id, reason=t.reasons.get(n.reason, n.reason))
        if n.fire_alarm_id is None
        else t.what_fire_alarm.format(fault=n.fault, fire_alarm_id=n.fire_alarm_id),
    ]
    sla = sla_phrase(n.sla_clock, n.sla_left_s, lang=lang)
    if sla is not None:
        lines.append(sla)
    if n.ack_url is not None:
        lines.append(t.ack.format(url=n.ack_url))
    return "\n".join(lines)
