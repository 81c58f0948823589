"""The alert text, table by table."""

from __future__ import annotations

import pytest

from facmon.notifier.message import TEMPLATES, render_subject, render_text, sla_phrase
from tests.notifier.support import notification


@pytest.mark.parametrize(
    ("clock", "left_s", "expected"),
    [
        ("on_site", 12 * 60 + 59, "12 min left to be on site"),
        ("on_site", 60, "1 min left to be on site"),
        ("acknowledge", 179, "2 min left to acknowledge"),
        ("on_site", 59, "due now to be on site"),
        ("on_site", -59, "due now to be on site"),
        ("on_site", -3 * 60 - 10, "on-site deadline passed 3 min ago"),
        ("statutory_on_site", -600, "statutory on-site deadline passed 10 min ago"),
        ("repair", 4 * 3600, "240 min left to repair"),
        ("custom", 300, "5 min left on the custom clock"),
        ("custom", -300, "custom deadline passed 5 min ago"),
        (None, 300, None),
        ("on_site", None, None),
    ],
)
def test_sla_phrase(clock: str | None, left_s: float | None, expected: str | None) -> None:
    assert sla_phrase(clock, left_s) == expected


@pytest.mark.parametrize(
    ("changes", "subject"),
    [
        ({}, "[EMERGENCY] Passenger trapped - b1-e1"),
        ({"priority": "urgent", "title": "Door close fault"}, "[URGENT] Door close fault - b1-e1"),
        ({"priority": "low"}, "[low] Passenger trapped - b1-e1"),
    ],
)
def test_subject(changes: dict[str, object], subject: str) -> None:
    assert render_subject(notification(**changes)) == subject


def test_text_says_what_where_how_urgent_time_left_and_link() -> None:
    assert render_text(notification()).splitlines() == [
        "[EMERGENCY] Passenger trapped - b1-e1",
        "sunrise-garden / b1 / b1-e1",
        "entrapment, work order #7 (new)",
        "12 min left to be on site",
        "Acknowledge: https://facmon.example/api/v1/ack/abc.def",
    ]


@pytest.mark.parametrize(
    ("changes", "third", "rest"),
    [
        (
            {"reason": "breach", "sla_left_s": -185.0, "ack_url": None},
            "entrapment, work order #7 (deadline missed)",
            ["on-site deadline passed 3 min ago"],
        ),
        ({"reason": "escalation", "sla_clock": None, "sla_left_s": None, "ack_url": None}, None, []),
        ({"reason": "something-new"}, "entrapment, work order #7 (something-new)", None),
    ],
)
def test_text_variants(changes: dict[str, object], third: str | None, rest: list[str] | None) -> None:
    lines = render_text(notification(**changes)).splitlines()
    if third is not None:
        assert lines[2] == third
    if rest is not None:
        assert lines[3:] == rest


def test_every_language_names_the_same_clocks() -> None:
    # A language added later must cover the clocks English covers, or its messages would fall back mid-sentence.
    for lang, templates in TEMPLATES.items():
        assert set(templates.clocks) == set(TEMPLATES["en"].clocks) == set(templates.clock_nouns), lang
