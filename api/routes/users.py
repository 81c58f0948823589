"""Users, for admins: list, create, change role, password or status. Deactivating a user revokes their tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, status
from pydantic import Field, StringConstraints
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.accounts.models import Role, User
from api.accounts.passwords import WeakPassword
from api.accounts.store import AccountError, create_user, get_user, revoke_all, set_password
from api.auth import AuditorDep
from api.deps import ClockDep, EngineDep, SitesDep
from api.schemas import ProblemError, _Create, _Public, problem_response

router = APIRouter(prefix="/users", tags=["users"])

Username = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._@-]{0,63}$")]
UsernamePath = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9._@-]{0,63}$")]
Password = Annotated[str, StringConstraints(min_length=1, max_length=256)]
DisplayName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
TechnicianId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]


class UserCreate(_Create):
    username: Username = Field(description="lower case letters, digits and . _ @ -")
    role: Role
    password: Password = Field(description="at least 10 characters")
    display_name: DisplayName | None = None
    technician: TechnicianId | None = Field(default=None, description="required for technicians: their site-file id")


class UserUpdate(_Create):
    role: Role | None = None
    password: Password | None = None
    display_name: DisplayName | None = None
    technician: TechnicianId | None = None
    active: bool | None = Field(default=None, description="false: the user cannot sign in; their tokens are revoked")


class UserAdminPublic(_Public):
    id: int
    username: str
    display_name: str | None
    role: Role
    technician: str | None
    active: bool
    created_at: datetime
    updated_at: datetime


def _audited(user: User) -> dict[str, Any]:
    # Never the password hash: the audit log is readable by every admin.
    return UserAdminPublic.model_validate(user).model_dump(exclude={"id", "created_at"})


def _check_technician(sites: SitesDep, role: Role, technician: str | None) -> None:
    if role is not Role.TECHNICIAN:
        return
    if technician is None:
        raise ProblemError(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "Technician id missing", "a technician user needs `technician`"
        )
    if not any(technician == t.id for s in sites for t in s.technicians):
        raise ProblemError(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "Unknown technician",
            f"technician: {technician!r} is not a technician of any site file",
        )


@router.get("")
def read_users(engine: EngineDep) -> list[UserAdminPublic]:
    with Session(engine) as session:
        return [UserAdminPublic.model_validate(u) for u in session.scalars(select(User).order_by(User.username))]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={status.HTTP_409_CONFLICT: problem_response("the username is taken")},
)
def create(
    engine: EngineDep, sites: SitesDep, clock: ClockDep, auditor: AuditorDep, body: UserCreate
) -> UserAdminPublic:
    _check_technician(sites, body.role, body.technician)
    with Session(engine) as session:
        try:
            user = create_user(
                session,
                username=body.username,
                role=body.role,
                password=body.password,
                now=clock.now(),
                display_name=body.display_name,
                technician=body.technician,
            )
        except WeakPassword as exc:
            raise ProblemError(status.HTTP_422_UNPROCESSABLE_CONTENT, "Weak password", f"password: {exc}") from exc
        except AccountError as exc:
            raise ProblemError(status.HTTP_409_CONFLICT, "User exists", str(exc)) from exc
        auditor.record(session, "user.create", "user", user.username, after=_audited(user))
        public = UserAdminPublic.model_validate(user)
        session.commit()
    return public


@router.patch("/{username}", responses={status.HTTP_404_NOT_FOUND: problem_response("no such user")})
def update(
    engine: EngineDep,
    sites: SitesDep,
    clock: ClockDep,
    auditor: AuditorDep,
    username: UsernamePath,
    body: UserUpdate,
) -> UserAdminPublic:
    now = clock.now()
    with Session(engine) as session:
        user = get_user(session, username)
        if user is None:
            raise ProblemError(status.HTTP_404_NOT_FOUND, "User not found", f"no user {username!r}")
        if auditor.principal is not None and auditor.principal.user_id == user.id and body.active is False:
            raise ProblemError(status.HTTP_409_CONFLICT, "Cannot deactivate yourself", "ask another admin")
        before = _audited(user)
        role = body.role or Role(user.role)
        _check_technician(sites, role, body.technician if body.technician is not None else user.technician)
        if body.role is not None:
            user.role = body.role.value
        if body.display_name is not None:
            user.display_name = body.display_name
        if body.technician is not None:
            user.technician = body.technician
        if body.password is not None:
            try:
                set_password(user, body.password, now)
            except WeakPassword as exc:
                raise ProblemError(status.HTTP_422_UNPROCESSABLE_CONTENT, "Weak password", f"password: {exc}") from exc
        if body.active is not None:
            user.active = body.active
        if body.active is False or body.password is not None or body.role is not None:
            revoke_all(user, now)  # a changed password or role takes effect at once
        user.updated_at = now
        after = _audited(user) | {"password_changed": body.password is not None}
        auditor.record(session, "user.update", "user", user.username, before=before, after=after)
        public = UserAdminPublic.model_validate(user)
        session.commit()
    return public
