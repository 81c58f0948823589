"""Who is calling, and may they: bearer tokens resolved to a principal, role policies per router, the audit log.

Every router but health and the one-tap acknowledge links (whose signed token is the credential) is included with
`policy(read=..., write=...)`: reads (GET, HEAD) need one of the read roles, anything else one of the write roles,
so a viewer cannot change anything wherever a new route is added. Finer rules (a technician changes only work
orders assigned to them or unassigned ones at their sites) are checked by the routes with `Principal` helpers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from api.accounts import audit
from api.accounts.models import Role, TokenKind
from api.accounts.store import live_token
from api.deps import ClockDep, EngineDep, SitesDep
from facmon.estate.site import Site

__all__ = [
    "ADMINS",
    "ALL_ROLES",
    "ENGINEERING",
    "FIELD_WORK",
    "OPERATIONS",
    "REPORTING",
    "Auditor",
    "AuditorDep",
    "Principal",
    "PrincipalDep",
    "client_address",
    "policy",
    "require",
]

ALL_ROLES = frozenset(Role)
# Read the operational data (devices, work orders, fire, on call).
OPERATIONS = frozenset({Role.ADMIN, Role.ENGINEER, Role.TECHNICIAN, Role.VIEWER})
# Change work orders and record checks (a technician within their scope).
FIELD_WORK = frozenset({Role.ADMIN, Role.ENGINEER, Role.TECHNICIAN})
ENGINEERING = frozenset({Role.ADMIN, Role.ENGINEER})
ADMINS = frozenset({Role.ADMIN})
# Reports, KPIs and the device register: insurers and auditors too.
REPORTING = frozenset({Role.ADMIN, Role.ENGINEER, Role.VIEWER, Role.REPORTER})

_bearer = HTTPBearer(
    auto_error=False,
    description="a token from POST /api/v1/auth/login, or a long-lived API token (POST /api/v1/auth/tokens)",
)


@dataclass(frozen=True)
class Principal:
    user_id: int
    username: str
    role: Role
    # The technician id of the site files, for technicians; their sites are those listing them.
    technician: str | None
    sites: frozenset[str] | None  # None: every site
    token_id: int
    token_kind: TokenKind

    @property
    def actor(self) -> str:
        """The name recorded on timelines: the technician id for technicians (as card reads record them)."""
        return self.technician or self.username

    def sees_site(self, site: str) -> bool:
        return self.sites is None or site in self.sites

    def may_change_work_order(self, site: str, assignee: str | None) -> bool:
        if self.role in ENGINEERING:
            return True
        if self.role is Role.TECHNICIAN:
            return self.sees_site(site) and assignee in (None, self.technician)
        return False


def technician_sites(sites: Iterable[Site], technician: str | None) -> frozenset[str]:
    if technician is None:
        return frozenset()
    return frozenset(s.id for s in sites if any(t.id == technician for t in s.technicians))


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def get_principal(
    request: Request,
    engine: EngineDep,
    sites: SitesDep,
    clock: ClockDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    if credentials is None:
        raise _unauthorized("sign in: send Authorization: Bearer <token>")
    with engine.connect() as connection:
        record = live_token(connection, credentials.credentials, clock.now())
    if record is None:
        raise _unauthorized("the token is unknown, expired or revoked; sign in again")
    role = Role(record.role)
    principal = Principal(
        user_id=record.user_id,
        username=record.username,
        role=role,
        technician=record.technician,
        sites=technician_sites(sites, record.technician) if role is Role.TECHNICIAN else None,
        token_id=record.id,
        token_kind=TokenKind(record.kind),
    )
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def _forbidden(principal: Principal, allowed: frozenset[Role]) -> HTTPException:
    names = ", ".join(sorted(r.value for r in allowed))
    return HTTPException(
        status.HTTP_403_FORBIDDEN, detail=f"{principal.username} is {principal.role.value}; this needs {names}"
    )


def require(*roles: Role) -> Callable[[Principal], Principal]:
    """A dependency: the principal, if their role is one of `roles`."""
    allowed = frozenset(roles)

    def check(principal: PrincipalDep) -> Principal:
        if principal.role not in allowed:
            raise _forbidden(principal, allowed)
        return principal

    return check


_READS = frozenset({"GET", "HEAD", "OPTIONS"})


def policy(*, read: frozenset[Role], write: frozenset[Role] = frozenset()) -> Any:
    """A router-level dependency: reads need a role of `read`, changes one of `write` (none: read-only)."""

    # async: it does no I/O, and a sync dependency would cost a hop to the thread pool on every request.
    async def check(request: Request, principal: PrincipalDep) -> Principal:
        allowed = read if request.method in _READS else write
        if principal.role not in allowed:
            if not allowed:
                raise HTTPException(status.HTTP_405_METHOD_NOT_ALLOWED, detail="read only")
            raise _forbidden(principal, allowed)
        # A technician asking about another estate by name (?site=...) is refused here, for every router.
        site = request.query_params.get("site")
        if site is not None and not principal.sees_site(site):
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"{principal.username} does not work at {site}")
        return principal

    return Depends(check)


def client_address(request: Request) -> str | None:
    # The peer as the server saw it. Behind a reverse proxy, run uvicorn with --proxy-headers and
    # --forwarded-allow-ips so this is the real client.
    return request.client.host if request.client else None


@dataclass(frozen=True)
class Auditor:
    """Writes audit entries for the current request: who (the principal), when (the clock), from where."""

    principal: Principal | None
    client: str | None
    now_fn: Callable[[], Any]

    def record(
        self,
        session: Session,
        action: str,
        target_type: str,
        target_id: str | int,
        *,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
        actor: str | None = None,
    ) -> None:
        """Add the entry to `session`; it commits with the change."""
        audit.record(
            session,
            at=self.now_fn(),
            actor=actor or (self.principal.username if self.principal else "anonymous"),
            role=self.principal.role.value if self.principal else None,
            action=action,
            target_type=target_type,
            target_id=target_id,
            client=self.client,
            before=before,
            after=after,
        )

    def record_now(self, engine: Engine, action: str, target_type: str, target_id: str | int, **kwargs: Any) -> None:
        """For changes made in their own transaction (e.g. facmon.workorders.workflow): the entry in one of its own."""
        with Session(engine) as session:
            self.record(session, action, target_type, target_id, **kwargs)
            session.commit()


def get_auditor(request: Request, clock: ClockDep) -> Auditor:
    return Auditor(
        principal=getattr(request.state, "principal", None), client=client_address(request), now_fn=clock.now
    )


AuditorDep = Annotated[Auditor, Depends(get_auditor)]
