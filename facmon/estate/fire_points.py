"""A fire panel's commissioned points as the site file lists them: `points: ["1-001..1-120", "2-001..2-106", "3-007"]`.

Each entry is one point (`<loop>-<address>`, the address in three digits, as the panel's point table names them) or
a range of consecutive addresses on one loop. The expanded list is the panel's point table as commissioned: those
points count in the fire equipment intact rate whether or not the panel ever reports them (docs/kpis.md). Whether
the loops and addresses exist on the panel's model is checked against its driver (facmon.estate.site_checks).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated

from pydantic import Field

from facmon.kernel.datafile import Problem

_POINT = r"\d{1,2}-\d{3}"
_SPEC = re.compile(rf"^({_POINT})(?:\.\.({_POINT}))?$")
# One entry of a panel's `points`: "1-023" or "1-001..1-120" (its form is checked by `point_list_problems`, which
# says what is wrong in words rather than with a pattern).
PointSpec = Annotated[str, Field(min_length=1, max_length=32)]
# More than any panel model holds (16 loops of 255 addresses): a list beyond it is a mistake, not a panel.
MAX_POINTS = 16 * 255


def point_name(loop: int, address: int) -> str:
    return f"{loop}-{address:03d}"


def _parts(point: str) -> tuple[int, int]:
    loop, _, address = point.partition("-")
    return int(loop), int(address)


def expand(spec: str) -> list[str]:
    """The points one entry names, in address order; ValueError saying what is wrong with it."""
    match = _SPEC.match(spec)
    if match is None:
        raise ValueError(f"{spec!r} is not a point ('1-023') or a range of points ('1-001..1-120')")
    first, last = match.group(1), match.group(2) or match.group(1)
    (loop, start), (last_loop, end) = _parts(first), _parts(last)
    if loop < 1 or start < 1 or end < 1:
        raise ValueError(f"{spec!r}: loops and addresses count from 1")
    if last_loop != loop:
        raise ValueError(f"{spec!r}: a range stays on one loop ({first} is on loop {loop}, {last} on {last_loop})")
    if end < start:
        raise ValueError(f"{spec!r}: the range ends before it starts")
    return [point_name(loop, address) for address in range(start, end + 1)]


def expand_all(specs: Sequence[str]) -> list[str]:
    """Every point the entries name, once each, in the order listed (entries that are wrong left out)."""
    points: dict[str, None] = {}
    for spec in specs:
        try:
            points.update(dict.fromkeys(expand(spec)))
        except ValueError:
            continue
    return list(points)


def point_list_problems(specs: Sequence[str]) -> list[Problem]:
    """What is wrong with a panel's `points`, each with the index of its entry: a malformed entry, a range that
    runs backwards or across loops, a point listed twice."""
    problems: list[Problem] = []
    first: dict[str, int] = {}
    for index, spec in enumerate(specs):
        try:
            points = expand(spec)
        except ValueError as exc:
            problems.append(((index,), str(exc)))
            continue
        repeated = [p for p in points if p in first]
        if repeated:
            shown = repeated[0] if len(repeated) == 1 else f"{repeated[0]}..{repeated[-1]}"
            earlier = first[repeated[0]]
            problems.append(((index,), f"{shown} already listed in entry {earlier} ({specs[earlier]!r})"))
        for p in points:
            first.setdefault(p, index)
    if len(first) > MAX_POINTS:
        problems.append(((), f"{len(first)} points: more than any panel holds ({MAX_POINTS})"))
    return problems


def points_beyond(points: Sequence[str], loops: int, addresses: int) -> list[str]:
    """The points not on a panel of `loops` loops of `addresses` addresses each."""
    return [p for p in points if not (1 <= _parts(p)[0] <= loops and 1 <= _parts(p)[1] <= addresses)]
