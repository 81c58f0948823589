"""The work-order list writes its JSON from the database's rows without building the models (page_json): it must
read exactly as the models' own JSON would, for every shape a work order and its clocks can take."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from api.routes.work_orders import _fields, page_json
from api.schemas import WorkOrderPagePublic
from facmon.workorders.queries import list_work_order_rows, list_work_orders
from facmon.workorders.tables import WorkOrder, WorkOrderClock
from tests.api.test_api import START, seed


def _vary(engine: Engine) -> None:
    """Besides what `seed` opens: a clock met, one cancelled, an assignee, a closed work order with no running
    clock."""
    with Session(engine) as session, session.begin():
        ordered = select(WorkOrderClock).order_by(WorkOrderClock.work_order_id, WorkOrderClock.name)
        clocks = session.scalars(ordered).all()
        assert len(clocks) >= 3, "the seed opens work orders with clocks"
        clocks[0].met_at = clocks[0].due_at - timedelta(seconds=30.25)
        clocks[1].cancelled_at = START + timedelta(minutes=4)
        first = session.scalars(select(WorkOrder).order_by(WorkOrder.id)).first()
        assert first is not None
        first.assignee = "t1"
        session.execute(
            update(WorkOrder)
            .where(WorkOrder.device == "e2")
            .values(status="closed", closed_at=START + timedelta(minutes=30), next_due_at=None)
        )


@pytest.mark.parametrize("minutes", [0, 10, 25, 180])
@pytest.mark.parametrize("sort", ["urgency", "-detected_at", "priority"])
def test_the_list_reads_as_the_models_json(engine: Engine, minutes: int, sort: str) -> None:
    seed(engine)
    _vary(engine)
    now = START + timedelta(minutes=minutes, seconds=0.5)
    with Session(engine) as session:
        rows = list_work_order_rows(session, now=now, sort=sort, limit=50, offset=0)
        objects = list_work_orders(session, now=now, sort=sort, limit=50, offset=0)
        expected = WorkOrderPagePublic.model_validate(
            {
                "items": [_fields(wo, wo.clocks, now) for wo in objects.items],
                "total": objects.total,
                "limit": 50,
                "offset": 0,
            }
        ).model_dump_json()
    body = page_json(rows, now, 50, 0)
    assert body.decode() == expected
    page = json.loads(body)
    states = {clock["state"] for item in page["items"] for clock in item["sla"]["clocks"]}
    assert len(page["items"]) == objects.total >= 3
    if minutes >= 25:
        assert {"met", "cancelled", "breached"} <= states, states
