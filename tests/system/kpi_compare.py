"""facmon's figures as `GET /api/v1/kpis` and the monthly report (`facmon report kpi --format json`) give them, and
their comparison with the recomputed ones (tests/system/kpi_recompute.py): numerator and denominator exactly (hours
of availability to the API's rounding), coverage to a millionth, verdicts as words.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from tests.system.kpi_raw import utc
from tests.system.kpi_recompute import Cancellation, Figure, Recomputed

# The API's keys, then the report's, for each recomputed figure.
API_KEYS = {
    "arrival": ("elevator_arrival_compliance",),
    "arrival_statutory": ("elevator_arrival_compliance_statutory", "statutory_arrival_compliance"),
    "repair": ("repair_timeliness",),
    "follow_up": ("follow_up_visit_rate",),
    "availability": ("elevator_availability",),
}
REPORT_KEYS = {
    "arrival": "arrival_compliance",
    "arrival_statutory": "arrival_compliance_statutory",
    "repair": "repair_timeliness",
    "follow_up": "follow_up_rate",
    "fire_intact": "fire_intact_rate",
    "availability": "elevator_availability",
}
# Hours are rounded to 6 decimals by the API and 3 by the report.
HOURS_TOLERANCE = {"api": 1e-6, "report": 1e-3}
# The fire intact figures are stored as a percentage with 2 decimals (intact_pct), the mean rounded to 6: a mean of
# them is within 0.00005 of the mean of intact / commissioned.
MEAN_TOLERANCE = 6e-5


def _verdict(figure: Mapping[str, Any]) -> str | None:
    for key in ("verdict", "status"):
        if isinstance(figure.get(key), str):
            return str(figure[key])
    met = figure.get("met")
    return None if "met" not in figure else "no data" if met is None else "met" if met else "missed"


def _figure(
    numerator: Any, denominator: Any, coverage: Any, verdict: str | None, source: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    figure = {"numerator": numerator, "denominator": denominator, "coverage": coverage, "verdict": verdict}
    if source is not None and source.get("pending") is not None:
        # The work-order figures: the clocks still running, and the clock figures counted (minutes: work orders).
        figure["pending"] = source["pending"]
        figure["clocks"] = {float(c["minutes"]): c["work_orders"] for c in source.get("clocks", [])}
    return figure


def from_api(api: Mapping[str, Any]) -> dict[str, dict[str, Any] | None]:
    out: dict[str, dict[str, Any] | None] = {}
    for name, keys in API_KEYS.items():
        found = next((api[k] for k in keys if isinstance(api.get(k), dict)), None)
        if found is None:
            out[name] = None
        elif name == "availability":
            out[name] = _figure(
                found.get("numerator_hours"), found.get("denominator_hours"), found.get("coverage"), _verdict(found)
            )
        else:
            numbers = found.get("numerator"), found.get("denominator"), found.get("coverage")
            out[name] = _figure(*numbers, _verdict(found), found)
    fire = api.get("fire_equipment_intact_rate") or {}
    current = fire.get("current") or {}
    out["fire_intact_now"] = _figure(current.get("numerator"), current.get("denominator"), None, "")
    mean = fire.get("period_mean")
    out["fire_intact"] = _figure(
        mean if mean is not None else 0.0, 0 if mean is None else 1, fire.get("coverage"), _verdict(fire)
    )
    return out


def from_report(report: Mapping[str, Any]) -> dict[str, dict[str, Any] | None]:
    lines = {line["key"]: line for line in report.get("kpis", [])}
    out: dict[str, dict[str, Any] | None] = {}
    for name, key in REPORT_KEYS.items():
        line = lines.get(key)
        if line is None:
            out[name] = None
        elif name == "fire_intact":
            value = line.get("value")
            out[name] = _figure(
                value if value is not None else 0.0, 0 if value is None else 1, line.get("coverage"), _verdict(line)
            )
        else:
            numbers = line.get("numerator"), line.get("denominator"), line.get("coverage")
            out[name] = _figure(*numbers, _verdict(line), line)
    return out


def _close(mine: float, theirs: Any, tolerance: float) -> bool:
    return isinstance(theirs, int | float) and abs(mine - float(theirs)) <= tolerance


def differences(where: str, mine: Recomputed, theirs: Mapping[str, dict[str, Any] | None]) -> list[str]:
    """What facmon's figures of `where` ('api ...' or 'report ...') say that the recomputation does not."""
    found = []
    source = where.split()[0]
    for name, figure in mine.figures.items():
        if name not in theirs:
            continue
        got = theirs[name]
        if got is None:
            found.append(f"{where}: {name}: facmon gives no such figure (recomputed {_show(figure)})")
            continue
        if figure.denominator == 0 and got["numerator"] is None and got["denominator"] is None:
            got = got | {"numerator": 0, "denominator": 0}  # nothing to count: shown as no figure
        hours = name == "availability"
        exact = HOURS_TOLERANCE[source] if hours else MEAN_TOLERANCE if name == "fire_intact" else 0.0
        wrong = [
            f"{key} {got[key]!r} != {value!r}"
            for key, value in (("numerator", figure.numerator), ("denominator", figure.denominator))
            if not _close(value, got[key], exact)
        ]
        if figure.coverage is not None and not _close(figure.coverage, got["coverage"], 1e-9):
            wrong.append(f"coverage {got['coverage']!r} != {figure.coverage!r}")
        if figure.verdict and got["verdict"] != figure.verdict:
            wrong.append(f"verdict {got['verdict']!r} != {figure.verdict!r}")
        wrong += _clock_differences(figure, got)
        if wrong:
            found.append(f"{where}: {name}: " + "; ".join(wrong) + f" (recomputed {_show(figure)})")
    return found


def _clock_differences(figure: Figure, got: Mapping[str, Any]) -> list[str]:
    if "pending" not in got:
        return []
    wrong = []
    if got["pending"] != figure.pending:
        wrong.append(f"pending {got['pending']!r} != {figure.pending!r}")
    mine = {round(seconds / 60.0, 2): n for seconds, n in figure.clock_figures.items()}
    if got["clocks"] != mine:
        wrong.append(f"clock figures (minutes: work orders) {got['clocks']!r} != {mine!r}")
    return wrong


def _show(figure: Figure) -> str:
    return f"{figure.numerator:g}/{figure.denominator:g}, coverage {figure.coverage}, {figure.verdict or '-'}" + (
        f", pending {figure.pending}" if figure.pending else ""
    )


def cancellation_differences(where: str, mine: list[Cancellation], listed: Any) -> list[str]:
    """The cancellations facmon lists beside the figures against the recomputed ones: which, when, who, why, and the
    clocks already missed at the cancellation."""
    if not isinstance(listed, list):
        return [f"{where}: cancellations: facmon lists none (recomputed {[c.id for c in mine]})"]
    theirs = {}
    for item in listed:
        at = utc(item.get("cancelled_at") or item.get("at"))
        missed = item.get("missed") or item.get("missed_clocks") or []
        names = tuple(sorted(m if isinstance(m, str) else m.get("name", "") for m in missed))
        theirs[item.get("id") or item.get("work_order_id")] = (
            at,
            item.get("by") or item.get("cancelled_by"),
            item.get("reason"),
            names,
        )
    wanted = {c.id: (c.at, c.by, c.reason, c.missed) for c in mine}
    if theirs != wanted:
        return [f"{where}: cancellations: facmon {theirs} != recomputed {wanted}"]
    return []


def milestone_differences(
    where: str, mine: Recomputed, theirs: Mapping[int, tuple[datetime | None, datetime | None]]
) -> list[str]:
    """Work orders whose on-site or resolved time in facmon (`on_site_at`, `resolved_at`) is not the evidence's."""
    found = []
    for wo_id, (on_site, resolved) in sorted(mine.milestones.items()):
        if wo_id in theirs and theirs[wo_id] != (on_site, resolved):
            said = f"facmon {theirs[wo_id]}, evidence {(on_site, resolved)}"
            found.append(f"{where}: work order {wo_id}: (on site, resolved) {said}")
    return found


def when(text: str) -> datetime:
    at = utc(text)
    assert at is not None
    return at
