"""Outside demo mode, facmon refuses to start with missing or default secrets, without an admin, or while a demo
account still has its published password; each problem is named."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from api.accounts.bootstrap import DEMO_PASSWORD, UnsafeStart, check_real_start, ensure_demo_accounts
from api.accounts.models import Role
from api.accounts.store import create_user, get_user, set_password
from facmon.estate.site import load_site
from facmon.kernel.db import make_engine
from facmon.shell.migrations.schema import create_schema

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
GOOD_KEY = "9f2c4e71b8a05d3e6c17f4a29b80d5e3c6a1f7042be95d8c03a6f1e7b42d9c58"
NOW = datetime(2026, 11, 1, tzinfo=UTC)


def _facmon(*args: str, env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FACMON_")}
    return subprocess.run(
        [sys.executable, "-m", "facmon", *args],
        env=base | env,
        capture_output=True,
        text=True,
        timeout=60,
        input=stdin,
        check=False,
    )


def test_a_real_start_names_every_problem_then_runs_once_they_are_fixed(tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    # The port is taken, so a command that gets past the checks stops at binding it instead of serving.
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = str(taken.getsockname()[1])
    api = ("api", "--site", str(EXAMPLES / "demo-site.yaml"), "--state-dir", state, "--port", port)
    refused = _facmon(*api, env={})
    assert refused.returncode == 2
    assert "no secret key" in refused.stderr
    assert "no active admin" in refused.stderr
    assert "--demo" in refused.stderr

    weak = _facmon(*api, env={"FACMON_SECRET_KEY": "changeme" * 4})
    assert weak.returncode == 2
    assert "too predictable" in weak.stderr
    assert "openssl rand -hex 32" in weak.stderr

    key_file = tmp_path / "secret"
    key_file.write_text(GOOD_KEY + "\n")
    added = _facmon(
        "users", "add", "ops", "--role", "admin", "--password-stdin", "--state-dir", state,
        env={}, stdin="a long enough password\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    started = _facmon(*api, env={"FACMON_SECRET_KEY_FILE": str(key_file)})
    taken.close()
    assert "refusing to start" not in started.stderr
    assert "address already in use" in started.stderr.lower(), started.stderr


def test_demo_accounts_block_a_real_start_until_their_passwords_change(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'facmon.db'}")
    create_schema(engine)
    site = load_site(EXAMPLES / "demo-site.yaml")
    accounts = ensure_demo_accounts(engine, [site], NOW)
    assert {a.role for a in accounts} == set(Role)
    assert {a.username for a in accounts if a.role is Role.TECHNICIAN} == {t.id for t in site.technicians}
    assert len(ensure_demo_accounts(engine, [site], NOW)) == len(accounts), "running it again adds nobody"
    with pytest.raises(UnsafeStart) as refused:
        check_real_start(engine, GOOD_KEY)
    assert "'admin' still has the published demo password" in str(refused.value)
    with Session(engine) as session:
        for account in accounts:
            user = get_user(session, account.username)
            assert user is not None
            set_password(user, f"{account.username}-a-new-secret", NOW)
        session.commit()
    check_real_start(engine, GOOD_KEY)
    engine.dispose()


def test_an_admin_and_a_good_key_are_enough(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'facmon.db'}")
    create_schema(engine)
    with pytest.raises(UnsafeStart, match="no active admin"):
        check_real_start(engine, GOOD_KEY)
    with Session(engine) as session:
        create_user(session, username="ops", role=Role.ADMIN, password="correct horse battery", now=NOW)
        session.commit()
    check_real_start(engine, GOOD_KEY)
    with pytest.raises(UnsafeStart, match="at least 32 bytes"):
        check_real_start(engine, "short-key-1234")
    assert DEMO_PASSWORD[Role.ADMIN] != "correct horse battery"
    engine.dispose()


def test_the_api_refuses_to_start_with_the_retired_arrival_window_or_a_bad_kpi_target(tmp_path: Path) -> None:
    """Arrival is judged by each work order's own clocks: a deployment still setting FACMON_KPI_ARRIVAL_WITHIN is told
    so at start, not left believing 20 min still applies; an impossible target is named too."""
    api = ("api", "--site", str(EXAMPLES / "demo-site.yaml"), "--state-dir", str(tmp_path / "s"), "--demo")
    retired = _facmon(*api, "--port", "1", env={"FACMON_KPI_ARRIVAL_WITHIN": "PT20M"})
    assert retired.returncode == 2, retired.stderr
    assert "FACMON_KPI_ARRIVAL_WITHIN is no longer read" in retired.stderr
    impossible = _facmon(*api, "--port", "1", env={"FACMON_KPI_MIN_COVERAGE": "1.5"})
    assert impossible.returncode == 2, impossible.stderr
    assert "min_coverage" in impossible.stderr
