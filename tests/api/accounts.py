"""Real users and tokens in a test's database, for calling the API as someone with a role."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from api.accounts.models import Role, TokenKind
from api.accounts.store import create_user, get_user, issue_token
from facmon.kernel.db import make_engine

CREATED = datetime(2026, 1, 1, tzinfo=UTC)


def bearer(
    engine: Engine, role: Role = Role.ADMIN, *, username: str | None = None, technician: str | None = None
) -> dict[str, str]:
    """Authorization headers of an API token for `username` (made with `role` when it does not exist yet)."""
    username = username or technician or f"test-{role.value}"
    with Session(engine) as session:
        user = get_user(session, username) or create_user(
            session, username=username, role=role, password=None, now=CREATED, technician=technician
        )
        issued = issue_token(session, user, kind=TokenKind.API, now=CREATED, name="tests")
        session.commit()
    return {"Authorization": f"Bearer {issued.token}"}


def bearer_for(db_url: str, role: Role = Role.ADMIN, **kwargs: str) -> dict[str, str]:
    engine = make_engine(db_url)
    try:
        return bearer(engine, role, **kwargs)
    finally:
        engine.dispose()
