"""Starting safely: demo accounts for the demo, and the checks that refuse a real start with unsafe settings.

The demo accounts and their passwords are documented (README), so anyone can try the demo; for the same reason
a service that is not in demo mode refuses to start while any of them can still sign in with its demo password.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from api.accounts import audit
from api.accounts.models import Role, User
from api.accounts.passwords import verify_password
from api.accounts.store import create_user, get_user
from facmon.estate.site import Site
from facmon.notifier.tokens import HOW_TO_MAKE_ONE, InsecureSecret, check_secret


@dataclass(frozen=True)
class DemoAccount:
    username: str
    role: Role
    password: str
    technician: str | None = None
    display_name: str | None = None


# Fixed and published: they are for trying the demo, never for a real estate.
DEMO_PASSWORD = {
    Role.ADMIN: "demo-admin-pass",
    Role.ENGINEER: "demo-engineer-pass",
    Role.VIEWER: "demo-viewer-pass",
    Role.REPORTER: "demo-insurer-pass",
    Role.TECHNICIAN: "demo-tech-pass",
}
_STAFF = (
    ("admin", Role.ADMIN, "Demo administrator"),
    ("engineer", Role.ENGINEER, "Demo maintenance engineer"),
    ("viewer", Role.VIEWER, "Demo viewer"),
    ("insurer", Role.REPORTER, "Demo insurance desk"),
)


def demo_password(username: str) -> str:
    """The published password of a demo account: the staff accounts by name, any other is a technician."""
    role = next((role for name, role, _ in _STAFF if name == username), Role.TECHNICIAN)
    return DEMO_PASSWORD[role]


def demo_accounts(sites: Iterable[Site]) -> list[DemoAccount]:
    accounts = [DemoAccount(name, role, DEMO_PASSWORD[role], display_name=title) for name, role, title in _STAFF]
    seen: set[str] = set()
    for site in sites:
        for technician in site.technicians:
            if technician.id not in seen:
                seen.add(technician.id)
                accounts.append(
                    DemoAccount(
                        technician.id,
                        Role.TECHNICIAN,
                        DEMO_PASSWORD[Role.TECHNICIAN],
                        technician=technician.id,
                        display_name=technician.name,
                    )
                )
    return accounts


def ensure_demo_accounts(engine: Engine, sites: Sequence[Site], now: datetime) -> list[DemoAccount]:
    """Create the demo accounts that are missing (existing users are left as they are); the full list."""
    accounts = demo_accounts(sites)
    with Session(engine) as session:
        for account in accounts:
            if get_user(session, account.username) is None:
                create_user(
                    session,
                    username=account.username,
                    role=account.role,
                    password=account.password,
                    now=now,
                    display_name=account.display_name,
                    technician=account.technician,
                )
                audit.record(
                    session,
                    at=now,
                    actor="facmon",
                    role=None,
                    action="user.create",
                    target_type="user",
                    target_id=account.username,
                    client=None,
                    after={"role": account.role, "technician": account.technician, "demo": True},
                )
        session.commit()
    return accounts


def demo_banner(accounts: Sequence[DemoAccount]) -> str:
    lines = ["Demo accounts (demo mode only; a real start refuses to run while they work):"]
    by_role: dict[Role, list[str]] = {}
    for account in accounts:
        by_role.setdefault(account.role, []).append(account.username)
    for role, names in by_role.items():
        lines.append(f"  {role.value:<11} {', '.join(names):<40} password {DEMO_PASSWORD[role]}")
    return "\n".join(lines)


class UnsafeStart(RuntimeError):
    """Settings or accounts a real (not demo) start must not run with; the message lists every problem."""


def check_real_start(engine: Engine, secret_key: str | None, sites: Sequence[Site] = ()) -> None:
    """Raise UnsafeStart naming every problem. Only the demo accounts' names are tried against the published
    passwords (an Argon2 check costs a third of a second), so start-up does not grow with the number of users."""
    problems: list[str] = []
    if secret_key is None:
        problems.append(f"no secret key: set FACMON_SECRET_KEY or FACMON_SECRET_KEY_FILE; {HOW_TO_MAKE_ONE}")
    else:
        try:
            check_secret(secret_key.encode())
        except InsecureSecret as exc:
            problems.append(f"FACMON_SECRET_KEY: {exc}")
    with Session(engine) as session:
        users = list(session.scalars(select(User).where(User.active.is_(True))))
    if not any(u.role == Role.ADMIN.value for u in users):
        problems.append("no active admin: create one with `facmon users add <name> --role admin`")
    demo_names = {account.username for account in demo_accounts(sites)}
    for user in users:
        if user.username in demo_names and verify_password(user.password_hash, demo_password(user.username)):
            problems.append(f"user {user.username!r} still has the published demo password: change or disable it")
    if problems:
        raise UnsafeStart("refusing to start outside demo mode:\n  - " + "\n  - ".join(problems))
