"""Signing in and out, who am I, and API tokens for integrations.

A login answers with a bearer token that expires after 12 hours; an API token is named, long-lived (or with an
expiry the caller chooses) and revocable. Both are random, shown once, and stored only as a hash.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import AfterValidator, Field, StringConstraints
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.accounts.models import ApiToken, Role, TokenKind
from api.accounts.store import authenticate, get_user, issue_token, revoke_token
from api.accounts.throttle import LoginThrottle
from api.auth import Auditor, AuditorDep, PrincipalDep, client_address, technician_sites
from api.deps import ClockDep, EngineDep
from api.nul_check import no_nul
from api.schemas import IdPath, ProblemError, _Create, _Public, problem_response

router = APIRouter(prefix="/auth", tags=["auth"])

# No NUL (api.nul_check) in the types themselves: these routes check the caller inside, before the body is validated.
Username = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64), AfterValidator(no_nul)]
Password = Annotated[str, StringConstraints(min_length=1, max_length=256), AfterValidator(no_nul)]
TokenName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128), AfterValidator(no_nul)
]


class LoginCreate(_Create):
    username: Username
    password: Password


class UserPublic(_Public):
    username: str
    display_name: str | None
    role: Role
    technician: str | None = Field(description="the technician id of the site files, for technicians")
    sites: list[str] | None = Field(description="the sites this user works at; null: all")


class LoginPublic(_Public):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_at: datetime
    user: UserPublic


class TokenCreate(_Create):
    name: TokenName = Field(description="what the token is for, e.g. 'BMS integration'")
    expires_in_days: int | None = Field(default=None, ge=1, le=3650, description="default: does not expire")
    username: Username | None = Field(default=None, description="admins only: a token for this user")


class TokenPublic(_Public):
    id: int
    kind: TokenKind
    name: str | None
    prefix: str = Field(description="the token's first characters, to tell it apart")
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenIssuedPublic(TokenPublic):
    token: str = Field(description="shown this once; facmon keeps only a hash")


def _throttle(request: Request) -> LoginThrottle:
    throttle: LoginThrottle = request.app.state.login_throttle
    return throttle


@router.post(
    "/login",
    responses={
        status.HTTP_401_UNAUTHORIZED: problem_response("wrong username or password"),
        status.HTTP_429_TOO_MANY_REQUESTS: problem_response("too many failed logins; wait Retry-After seconds"),
    },
)
def login(request: Request, engine: EngineDep, clock: ClockDep, body: LoginCreate) -> LoginPublic:
    throttle = _throttle(request)
    keys = (f"user:{body.username.lower()}", f"client:{client_address(request)}")
    # Counted before the password is checked, in one step with the check of the wait: concurrent guesses cannot all
    # pass the check while the first ones are still hashing.
    attempt = throttle.attempt(keys, clock.monotonic())
    if attempt.wait_s > 0:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail=f"too many failed logins; try again in {attempt.wait_s:.0f} s",
            headers={"Retry-After": str(max(1, round(attempt.wait_s)))},
        )
    now = clock.now()
    with Session(engine) as session:
        user = authenticate(session, body.username, body.password, now)
        if user is None:
            Auditor(None, client_address(request), clock.now).record(
                session, "auth.login_failed", "user", body.username, actor=body.username
            )
            session.commit()
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail="wrong username or password",
                headers={"WWW-Authenticate": "Bearer"},
            )
        throttle.succeeded(attempt)
        issued = issue_token(session, user, kind=TokenKind.SESSION, now=now, name="login")
        Auditor(None, client_address(request), clock.now).record(
            session, "auth.login", "user", user.username, actor=user.username
        )
        answer = LoginPublic(
            access_token=issued.token,
            expires_at=issued.record.expires_at or now,
            user=_public_user(request, user.username, user.display_name, Role(user.role), user.technician),
        )
        session.commit()
    return answer


def _public_user(
    request: Request, username: str, display_name: str | None, role: Role, technician: str | None
) -> UserPublic:
    sites = sorted(technician_sites(request.app.state.sites, technician)) if role is Role.TECHNICIAN else None
    return UserPublic(username=username, display_name=display_name, role=role, technician=technician, sites=sites)


@router.get("/me")
def read_me(request: Request, engine: EngineDep, principal: PrincipalDep) -> UserPublic:
    with Session(engine) as session:
        user = get_user(session, principal.username)
        display_name = user.display_name if user else None
    return _public_user(request, principal.username, display_name, principal.role, principal.technician)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(engine: EngineDep, clock: ClockDep, principal: PrincipalDep, auditor: AuditorDep) -> None:
    """Revoke the token this request came with."""
    with Session(engine) as session:
        record = session.get(ApiToken, principal.token_id)
        if record is not None:
            revoke_token(record, clock.now())
            auditor.record(session, "auth.logout", "token", record.id)
        session.commit()


@router.get("/tokens")
def read_tokens(engine: EngineDep, principal: PrincipalDep) -> list[TokenPublic]:
    """Your API tokens (admins: everyone's), newest first; login sessions are left out."""
    with Session(engine) as session:
        query = select(ApiToken).where(ApiToken.kind == TokenKind.API.value).order_by(ApiToken.id.desc())
        if principal.role is not Role.ADMIN:
            query = query.where(ApiToken.user_id == principal.user_id)
        return [TokenPublic.model_validate(t) for t in session.scalars(query)]


@router.post(
    "/tokens",
    status_code=status.HTTP_201_CREATED,
    responses={status.HTTP_404_NOT_FOUND: problem_response("no such user")},
)
def create_token(
    engine: EngineDep, clock: ClockDep, principal: PrincipalDep, auditor: AuditorDep, body: TokenCreate
) -> TokenIssuedPublic:
    """A long-lived token for an integration; it acts as the user it belongs to, with that user's role."""
    if body.username is not None and body.username != principal.username and principal.role is not Role.ADMIN:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="only admins issue tokens for other users")
    now = clock.now()
    with Session(engine) as session:
        user = get_user(session, body.username or principal.username)
        if user is None:
            raise ProblemError(status.HTTP_404_NOT_FOUND, "User not found", f"no user {body.username!r}")
        ttl = None if body.expires_in_days is None else timedelta(days=body.expires_in_days)
        issued = issue_token(session, user, kind=TokenKind.API, now=now, name=body.name, ttl=ttl)
        public = TokenPublic.model_validate(issued.record)
        auditor.record(
            session, "token.create", "token", issued.record.id, after=public.model_dump() | {"user": user.username}
        )
        session.commit()
    return TokenIssuedPublic(**public.model_dump(), token=issued.token)


@router.delete(
    "/tokens/{token_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={status.HTTP_404_NOT_FOUND: problem_response("no such token")},
)
def delete_token(
    engine: EngineDep,
    clock: ClockDep,
    principal: PrincipalDep,
    auditor: AuditorDep,
    token_id: IdPath,
) -> None:
    """Revoke a token at once: the next request with it is refused."""
    with Session(engine) as session:
        record = session.get(ApiToken, token_id)
        if record is None or (principal.role is not Role.ADMIN and record.user_id != principal.user_id):
            raise ProblemError(status.HTTP_404_NOT_FOUND, "Token not found", f"no token {token_id} of yours")
        before = TokenPublic.model_validate(record).model_dump()
        revoke_token(record, clock.now())
        auditor.record(
            session,
            "token.revoke",
            "token",
            token_id,
            before=before,
            after=TokenPublic.model_validate(record).model_dump(),
        )
        session.commit()
