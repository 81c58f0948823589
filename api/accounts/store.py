"""Users and their tokens: create, authenticate, issue, resolve, revoke. Each function takes a session and commits
nothing, so the caller writes the change and its audit entry in one transaction."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, Select, bindparam, func, select, update
from sqlalchemy.orm import Session

from api.accounts.models import ApiToken, Role, TokenKind, User
from api.accounts.passwords import check_strength, hash_password, needs_rehash, verify_password

SESSION_TTL = timedelta(hours=12)
# Tokens carry this prefix so a leaked one is easy to recognise (and to search for in a repository).
TOKEN_PREFIX = "fm_"


class AccountError(ValueError):
    """A request about accounts that cannot be done as asked; the message says why."""


@dataclass(frozen=True)
class IssuedToken:
    token: str  # shown once; only its hash is kept
    record: ApiToken


def token_hash(token: str) -> str:
    # Tokens are 256 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(token.encode()).hexdigest()


def get_user(session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == username))


def count_users(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(User)) or 0


def create_user(
    session: Session,
    *,
    username: str,
    role: Role,
    password: str | None,
    now: datetime,
    display_name: str | None = None,
    technician: str | None = None,
) -> User:
    if get_user(session, username) is not None:
        raise AccountError(f"user {username!r} exists already")
    if role is Role.TECHNICIAN and not technician:
        raise AccountError("a technician user needs the technician id of the site files (for cards and rotas)")
    user = User(
        username=username,
        display_name=display_name,
        role=role.value,
        technician=technician,
        password_hash=None if password is None else hash_password(check_strength(password)),
        active=True,
        created_at=now,
        updated_at=now,
    )
    session.add(user)
    session.flush()
    return user


def set_password(user: User, password: str, now: datetime) -> None:
    user.password_hash = hash_password(check_strength(password))
    user.updated_at = now


def authenticate(session: Session, username: str, password: str, now: datetime) -> User | None:
    """The active user with this password, or None (the same answer, in the same time, for an unknown name)."""
    user = get_user(session, username)
    ok = verify_password(user.password_hash if user else None, password)
    if user is None or not ok or not user.active:
        return None
    if user.password_hash and needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
        user.updated_at = now
    return user


def issue_token(
    session: Session,
    user: User,
    *,
    kind: TokenKind,
    now: datetime,
    name: str | None = None,
    ttl: timedelta | None = None,
) -> IssuedToken:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    if kind is TokenKind.SESSION and ttl is None:
        ttl = SESSION_TTL
    record = ApiToken(
        user_id=user.id,
        kind=kind.value,
        name=name,
        token_hash=token_hash(token),
        prefix=token[: len(TOKEN_PREFIX) + 6],
        created_at=now,
        expires_at=None if ttl is None else now + ttl,
        last_used_at=None,
        revoked_at=None,
    )
    session.add(record)
    session.flush()
    return IssuedToken(token=token, record=record)


def _live_token_query() -> Select[Any]:
    t, u = ApiToken.__table__.c, User.__table__.c
    return (
        select(t.id, t.kind, t.expires_at, t.last_used_at, t.revoked_at, u.active)
        .add_columns(u.id.label("user_id"), u.username, u.role, u.technician)
        .join_from(ApiToken.__table__, User.__table__, t.user_id == u.id)
        .where(t.token_hash == bindparam("token_hash"))
    )


# Built once: building the statement cost as much as running it.
_LIVE_TOKEN = _live_token_query()
_MARK_USED = update(ApiToken).where(ApiToken.id == bindparam("token_id")).values(last_used_at=bindparam("now"))


def live_token(connection: Connection, token: str, now: datetime) -> Row[Any] | None:
    """The live token for a bearer token (not revoked, not expired, its user active) as one row (the token's id and
    kind, its user's id, username, role and technician), or None; marks it used. Read with Core and the user in the
    same query: every authenticated request asks this, and loading two ORM objects in a session cost more than the
    query."""
    row = connection.execute(_LIVE_TOKEN, {"token_hash": token_hash(token)}).first()
    if row is None or row.revoked_at is not None or not row.active:
        return None
    if row.expires_at is not None and row.expires_at <= now:
        return None
    # Written at most once a minute per token, so reads do not turn into a write each (committed only then).
    if row.last_used_at is None or now - row.last_used_at >= timedelta(minutes=1):
        connection.execute(_MARK_USED, {"token_id": row.id, "now": now})
        connection.commit()
    return row


def revoke_token(record: ApiToken, now: datetime) -> None:
    if record.revoked_at is None:
        record.revoked_at = now


def revoke_all(user: User, now: datetime) -> int:
    live = [t for t in user.tokens if t.revoked_at is None]
    for record in live:
        record.revoked_at = now
    return len(live)
