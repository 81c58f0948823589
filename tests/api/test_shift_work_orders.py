"""Running a shift from the API: work-order filters and sorts, technician scope, assigning, notes, who is on it.

Real SQLite, real API tokens (tests.api.accounts), the clock fixed at shift_support.NOW; the seven work orders of
shift_support.SEED have ids 1..7.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from api.accounts.models import Role
from facmon.kernel.db import make_engine
from tests.api.accounts import bearer
from tests.api.shift_support import NOW, client_for, iso, m, make_app, seed

PROBLEM = "application/problem+json"


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    seed(engine)
    yield engine
    engine.dispose()


@pytest.fixture
async def client(engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(make_app(engine)) as client:
        yield client


def admin(engine: Engine) -> dict[str, str]:
    return bearer(engine, Role.ADMIN)


def tech(engine: Engine, technician: str) -> dict[str, str]:
    return bearer(engine, Role.TECHNICIAN, technician=technician)


async def ids(client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> list[int]:
    response = await client.get("/work-orders", params=params, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == len(body["items"]) or "limit" in params
    return [item["id"] for item in body["items"]]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, [1, 2, 6, 3, 4, 5, 7]),  # urgency: running deadlines (passed first), then newest without one
        ({"sort": "urgency"}, [1, 2, 6, 3, 4, 5, 7]),
        ({"sort": "detected_at"}, [7, 5, 4, 3, 1, 2, 6]),
        ({"sort": "-detected_at"}, [6, 2, 1, 3, 4, 5, 7]),
        ({"sort": "priority"}, [1, 6, 2, 3, 4, 5, 7]),
        ({"building": "b2"}, [3]),
        ({"kind": "fire_panel"}, [4]),
        ({"priority": "emergency"}, [1, 6]),
        ({"category": "check"}, [4]),
        ({"category": "task"}, [7]),
        ({"assignee": "li"}, [2]),
        ({"assignee": "none"}, [1, 6, 3, 7]),
        ({"breached": "true"}, [1, 7]),
        ({"breached": "false"}, [2, 6, 3, 4, 5]),
        ({"status": "open", "site": "north"}, [1, 3, 4]),
        ({"status": ["open", "acknowledged"], "device": "e1", "sort": "detected_at"}, [1, 2, 6]),
    ],
)
async def test_filters_and_sorts(
    client: httpx.AsyncClient, engine: Engine, params: dict[str, Any], expected: list[int]
) -> None:
    assert await ids(client, admin(engine), **params) == expected


async def test_pagination_keeps_the_total_and_the_order(client: httpx.AsyncClient, engine: Engine) -> None:
    response = await client.get("/work-orders", params={"limit": 2, "offset": 2}, headers=admin(engine))
    body = response.json()
    assert ([i["id"] for i in body["items"]], body["total"], body["limit"], body["offset"]) == ([6, 3], 7, 2, 2)
    last = (await client.get("/work-orders", params={"limit": 5, "offset": 5}, headers=admin(engine))).json()
    assert ([i["id"] for i in last["items"]], last["total"]) == ([5, 7], 7)


async def test_assignee_and_next_deadline_for_a_countdown(client: httpx.AsyncClient, engine: Engine) -> None:
    items = {i["id"]: i for i in (await client.get("/work-orders", headers=admin(engine))).json()["items"]}
    assert items[1]["next_deadline"] == {
        "name": "acknowledge",
        "milestone": "acknowledged",
        "due_at": iso(m(-27)),
        "time_left_s": -27 * 60.0,
    }
    assert (items[2]["assignee"], items[2]["next_deadline"]["time_left_s"]) == ("li", 600.0)
    assert (items[5]["assignee"], items[5]["next_deadline"]) == ("wang", None)


async def test_technicians_see_only_their_sites(client: httpx.AsyncClient, engine: Engine) -> None:
    li = tech(engine, "li")
    assert await ids(client, li) == [1, 2, 3, 4, 5, 7]
    elsewhere = await client.get("/work-orders", params={"site": "south"}, headers=li)
    assert (elsewhere.status_code, elsewhere.json()["detail"]) == (403, "li does not work at south")
    assert await ids(client, li, mine="true") == [1, 2, 3, 7]  # Li's, and the unassigned ones at north
    assert await ids(client, tech(engine, "chen"), mine="true") == [6]
    hidden = await client.get("/work-orders/6", headers=li)
    assert (hidden.status_code, hidden.headers["content-type"]) == (403, PROBLEM)
    assert hidden.json()["detail"] == "li does not work at south"
    assert (await client.get("/work-orders/1", headers=li)).status_code == 200


async def test_mine_needs_a_technician(client: httpx.AsyncClient, engine: Engine) -> None:
    response = await client.get("/work-orders", params={"mine": "true"}, headers=admin(engine))
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["query.mine"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"sort": "oldest"}, "query.sort"),
        ({"priority": "low"}, "query.priority"),
        ({"breached": "x"}, "query.breached"),
    ],
)
async def test_bad_list_parameters_are_422_naming_them(
    client: httpx.AsyncClient, engine: Engine, params: dict[str, str], field: str
) -> None:
    response = await client.get("/work-orders", params=params, headers=admin(engine))
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == [field]


async def test_technicians_cannot_change_other_sites_or_others_work_orders(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    li = tech(engine, "li")
    cases = [
        ("/work-orders/6/transitions", {"to": "acknowledged"}, "li does not work at south"),
        ("/work-orders/4/transitions", {"to": "acknowledged"}, "work order 4 is assigned to zhao"),
        ("/work-orders/4/notes", {"note": "I can help"}, "work order 4 is assigned to zhao"),
        ("/work-orders/4/assign", {"technician": "li"}, "work order 4 is assigned to zhao"),
        ("/work-orders/6/assign", {"technician": "li"}, "li does not work at south"),
        ("/work-orders/1/assign", {"technician": "wang"}, "a technician can only take a work order for themselves"),
        ("/work-orders/2/assign", {"technician": None}, "a technician can only take a work order for themselves"),
    ]
    for path, body, detail in cases:
        response = await client.post(path, json=body, headers=li)
        assert (response.status_code, response.json()["detail"]) == (403, detail), path
    after = (await client.get("/work-orders/4", headers=admin(engine))).json()
    assert (after["status"], after["assignee"], len(after["timeline"])) == ("open", "zhao", 0)


async def test_a_technician_takes_an_unassigned_work_order(client: httpx.AsyncClient, engine: Engine) -> None:
    wang = tech(engine, "wang")
    response = await client.post("/work-orders/3/assign", json={"technician": "wang"}, headers=wang)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["assignee"] == "wang"
    assert [(e["type"], e["actor"], e["source"], e["status"], e["detail"]) for e in body["timeline"]] == [
        ("assigned", "wang", "api", "open", {"from": None, "to": "wang"}),
    ]
    # Taking it again changes nothing; Li may not take it from Wang (and does not cover gates anyway).
    again = await client.post("/work-orders/3/assign", json={"technician": "wang"}, headers=wang)
    assert (again.status_code, len(again.json()["timeline"])) == (200, 1)
    li = await client.post("/work-orders/3/assign", json={"technician": "li"}, headers=tech(engine, "li"))
    assert li.status_code == 403


async def test_a_technician_who_covers_nothing_of_it_cannot_take_it(client: httpx.AsyncClient, engine: Engine) -> None:
    response = await client.post("/work-orders/3/assign", json={"technician": "li"}, headers=tech(engine, "li"))
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body.technician"
    assert "li does not cover security work (the work order is on a gate)" in response.json()["detail"]


async def test_acknowledging_an_unassigned_work_order_takes_it(client: httpx.AsyncClient, engine: Engine) -> None:
    li = tech(engine, "li")
    response = await client.post("/work-orders/1/transitions", json={"to": "on_site"}, headers=li)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["assignee"] == "li"
    assert [(e["type"], e["status"], e["actor"], e["detail"]) for e in body["timeline"]] == [
        ("transition", "acknowledged", "li", {"from": "open", "implied": True}),
        ("transition", "on_site", "li", {"from": "acknowledged", "implied": False}),
        ("assigned", "on_site", "li", {"from": None, "to": "li", "reason": "took the unassigned work order: on_site"}),
    ]
    # An engineer's transition takes nothing.
    engineer = bearer(engine, Role.ENGINEER)
    other = (await client.post("/work-orders/3/transitions", json={"to": "acknowledged"}, headers=engineer)).json()
    assert (other["assignee"], [e["type"] for e in other["timeline"]]) == (None, ["transition"])
    audit = (await client.get("/audit", params={"target_id": "1"}, headers=admin(engine))).json()["items"]
    assert [(a["action"], a["before"]["assignee"], a["after"]["assignee"]) for a in audit] == [
        ("work_order.on_site", None, "li")
    ]


@pytest.mark.parametrize(
    ("technician", "why"),
    [
        ("zhao", "zhao does not cover security work (the work order is on a gate)"),
        ("chen", "chen is not a technician of site north"),
        ("nobody", "nobody is not a technician of site north"),
    ],
)
async def test_engineers_assign_only_qualified_technicians_of_the_site(
    client: httpx.AsyncClient, engine: Engine, technician: str, why: str
) -> None:
    response = await client.post("/work-orders/3/assign", json={"technician": technician}, headers=admin(engine))
    assert response.status_code == 422
    assert [(e["field"], e["message"]) for e in response.json()["errors"]] == [("body.technician", why)]


async def test_assigning_and_taking_back_is_on_the_timeline_and_in_the_audit_log(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    engineer = bearer(engine, Role.ENGINEER, username="chief")
    first = await client.post("/work-orders/3/assign", json={"technician": "wang"}, headers=engineer)
    assert first.status_code == 200
    back = await client.post("/work-orders/3/assign", json={"technician": None}, headers=engineer)
    body = back.json()
    assert body["assignee"] is None
    assert [(e["type"], e["actor"], e["at"], e["detail"]) for e in body["timeline"]] == [
        ("assigned", "chief", iso(NOW), {"from": None, "to": "wang"}),
        ("assigned", "chief", iso(NOW), {"from": "wang", "to": None}),
    ]
    audit = (await client.get("/audit", params={"action": "work_order.assign"}, headers=admin(engine))).json()
    assert [(a["actor"], a["role"], a["target_id"], a["before"], a["after"]) for a in audit["items"]] == [
        ("chief", "engineer", "3", {"assignee": "wang"}, {"assignee": None}),
        ("chief", "engineer", "3", {"assignee": None}, {"assignee": "wang"}),
    ]
    done = await client.post("/work-orders/5/assign", json={"technician": "li"}, headers=engineer)
    assert (done.status_code, done.json()["current_status"]) == (409, "resolved")


async def test_notes_are_on_the_timeline_and_in_the_audit_log(client: httpx.AsyncClient, engine: Engine) -> None:
    li = tech(engine, "li")
    response = await client.post("/work-orders/2/notes", json={"note": "  waiting for a part  "}, headers=li)
    assert response.status_code == 201, response.text
    entry = response.json()["timeline"][-1]
    assert (entry["type"], entry["status"], entry["actor"], entry["source"], entry["note"], entry["at"]) == (
        "note",
        "acknowledged",
        "li",
        "api",
        "waiting for a part",
        iso(NOW),
    )
    audit = (await client.get("/audit", params={"action": "work_order.note"}, headers=admin(engine))).json()
    assert [(a["actor"], a["target_id"], a["after"]["note"]) for a in audit["items"]] == [
        ("li", "2", "waiting for a part")
    ]
    for body, field in (({"note": "   "}, "body.note"), ({}, "body.note"), ({"note": "x", "y": 1}, "body.y")):
        bad = await client.post("/work-orders/2/notes", json=body, headers=li)
        assert (bad.status_code, [e["field"] for e in bad.json()["errors"]]) == (422, [field])
    viewer = await client.post("/work-orders/2/notes", json={"note": "hi"}, headers=bearer(engine, Role.VIEWER))
    assert viewer.status_code == 403
    missing = await client.post("/work-orders/99/notes", json={"note": "hi"}, headers=admin(engine))
    assert (missing.status_code, missing.json()["detail"]) == (404, "no work order with id 99")


async def test_people_on_a_work_order(client: httpx.AsyncClient, engine: Engine) -> None:
    await client.post("/work-orders/2/notes", json={"note": "on it"}, headers=tech(engine, "li"))
    await client.post("/work-orders/2/notes", json={"note": "need help?"}, headers=bearer(engine, Role.ENGINEER))
    people = (await client.get("/work-orders/2", headers=admin(engine))).json()["people"]
    assert people == {
        "assignee": {"id": "li", "name": "Li Ming", "phone": "+86 138 0000 0001"},
        "on_call": [{"id": "wang", "name": "Wang Fang", "phone": "+86 138 0000 0002"}],
        "acted": [
            {
                "actor": "li",
                "technician": {"id": "li", "name": "Li Ming", "phone": "+86 138 0000 0001"},
                "last_at": iso(NOW),
            },
            {"actor": "test-engineer", "technician": None, "last_at": iso(NOW)},
        ],
    }
    # South has no rota and nobody assigned.
    south = (await client.get("/work-orders/6", headers=admin(engine))).json()["people"]
    assert south == {"assignee": None, "on_call": [], "acted": []}
