"""`facmon users ...` and `facmon tokens ...`: accounts from the command line, for the first admin and for scripts.

Changes are written to the audit log with the actor `cli:<login name>`, as changes through the API are.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.accounts import audit
from api.accounts.models import ApiToken, Role, TokenKind, User
from api.accounts.passwords import WeakPassword
from api.accounts.store import AccountError, create_user, get_user, issue_token, revoke_all, revoke_token, set_password
from facmon.kernel.clock import SystemClock
from facmon.shell.settings import Settings

users_app = typer.Typer(help="Users and their roles.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens for integrations.", no_args_is_help=True)

StateOption = Annotated[
    Path | None, typer.Option("--state-dir", help="folder for local data (default: FACMON_STATE_DIR or .facmon)")
]
PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="read the password from standard input instead of asking")
]
_CLOCK = SystemClock()


def _fail(message: str) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(2)


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


@contextmanager
def _session(state_dir: Path | None) -> Iterator[Session]:
    from facmon.kernel.db import make_engine
    from facmon.shell.migrations.schema import create_schema

    settings = Settings()
    if state_dir is not None:
        settings = settings.model_copy(update={"state_dir": state_dir})
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url())
    create_schema(engine)
    try:
        with Session(engine) as session:
            yield session
    finally:
        engine.dispose()


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


def _audit(session: Session, action: str, target_type: str, target_id: str | int, **snapshots: object) -> None:
    audit.record(
        session,
        at=_CLOCK.now(),
        actor=_actor(),
        role=None,
        action=action,
        target_type=target_type,
        target_id=target_id,
        client="cli",
        **snapshots,  # type: ignore[arg-type]
    )


@users_app.command("add")
def add(
    username: Annotated[str, typer.Argument(help="lower case letters, digits and . _ @ -")],
    role: Annotated[Role, typer.Option(help="admin, engineer, technician, viewer or reporter")],
    technician: Annotated[str | None, typer.Option(help="for technicians: their id in the site files")] = None,
    display_name: Annotated[str | None, typer.Option("--name", help="the name people know them by")] = None,
    password_stdin: PasswordStdin = False,
    state_dir: StateOption = None,
) -> None:
    """Create a user (asks for the password, at least 10 characters)."""
    password = _password(password_stdin)
    with _session(state_dir) as session:
        try:
            user = create_user(
                session,
                username=username,
                role=role,
                password=password,
                now=_CLOCK.now(),
                display_name=display_name,
                technician=technician,
            )
        except (AccountError, WeakPassword) as exc:
            _fail(str(exc))
        _audit(session, "user.create", "user", username, after={"role": role, "technician": technician})
        session.commit()
        typer.echo(f"created {user.username} ({user.role})")


@users_app.command("list")
def list_users(state_dir: StateOption = None) -> None:
    """Every user with role and status."""
    with _session(state_dir) as session:
        for user in session.scalars(select(User).order_by(User.username)):
            status = "active" if user.active else "disabled"
            typer.echo(f"{user.username:<24} {user.role:<11} {status:<9} {user.technician or ''}")


@users_app.command("set-password")
def set_user_password(username: str, password_stdin: PasswordStdin = False, state_dir: StateOption = None) -> None:
    """Change a user's password; their tokens are revoked."""
    password = _password(password_stdin)
    with _session(state_dir) as session:
        user = get_user(session, username) or _fail(f"no user {username!r}")
        try:
            set_password(user, password, _CLOCK.now())
        except WeakPassword as exc:
            _fail(str(exc))
        revoked = revoke_all(user, _CLOCK.now())
        _audit(session, "user.update", "user", username, after={"password_changed": True, "tokens_revoked": revoked})
        session.commit()
        typer.echo(f"password of {username} changed; {revoked} token(s) revoked")


@users_app.command("disable")
def disable(username: str, state_dir: StateOption = None) -> None:
    """Stop a user signing in; their tokens are revoked at once."""
    with _session(state_dir) as session:
        user = get_user(session, username) or _fail(f"no user {username!r}")
        user.active = False
        user.updated_at = _CLOCK.now()
        revoked = revoke_all(user, _CLOCK.now())
        _audit(session, "user.update", "user", username, before={"active": True}, after={"active": False})
        session.commit()
        typer.echo(f"{username} disabled; {revoked} token(s) revoked")


@tokens_app.command("create")
def create_token(
    username: Annotated[str, typer.Option("--user", help="the user the token acts as")],
    name: Annotated[str, typer.Option(help="what it is for, e.g. 'BMS integration'")],
    expires_in_days: Annotated[int | None, typer.Option(min=1, help="default: does not expire")] = None,
    state_dir: StateOption = None,
) -> None:
    """Issue an API token; it is printed once, only its hash is kept."""
    from datetime import timedelta

    with _session(state_dir) as session:
        user = get_user(session, username) or _fail(f"no user {username!r}")
        ttl = None if expires_in_days is None else timedelta(days=expires_in_days)
        issued = issue_token(session, user, kind=TokenKind.API, now=_CLOCK.now(), name=name, ttl=ttl)
        _audit(session, "token.create", "token", issued.record.id, after={"user": username, "name": name})
        session.commit()
        typer.echo(issued.token)


@tokens_app.command("revoke")
def revoke(
    token_id: Annotated[int, typer.Argument(help="the token's id (facmon tokens list)")], state_dir: StateOption = None
) -> None:
    """Revoke a token at once."""
    with _session(state_dir) as session:
        record = session.get(ApiToken, token_id) or _fail(f"no token {token_id}")
        revoke_token(record, _CLOCK.now())
        _audit(session, "token.revoke", "token", token_id)
        session.commit()
        typer.echo(f"token {token_id} revoked")


@tokens_app.command("list")
def list_tokens(state_dir: StateOption = None) -> None:
    """API tokens (not login sessions): id, user, name, prefix, state."""
    with _session(state_dir) as session:
        query = select(ApiToken).where(ApiToken.kind == TokenKind.API.value).order_by(ApiToken.id)
        for record in session.scalars(query):
            state = "revoked" if record.revoked_at else "live"
            typer.echo(f"{record.id:>5} {record.user.username:<24} {record.name or '':<30} {record.prefix}… {state}")
