"""`facmon db upgrade` and `facmon db current`: revisions before and after, nothing created by asking, concurrent
upgrades (rules, notifier and API start together), and databases this facmon must not touch."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from facmon.kernel.db import make_engine
from facmon.shell.migrations.schema import create_schema
from facmon.shell.ops.database import head_revision
from tests.shell.ops.support import ROOT, run


def test_current_then_upgrade_then_current(tmp_path: Path) -> None:
    state = tmp_path / "state"
    asked = run("db", "current", "--check", state=state)
    assert asked.exit_code == 1
    assert "revision: none (empty database)" in asked.stdout
    assert not state.exists(), "asking creates nothing"

    first = run("db", "upgrade", state=state)
    assert first.exit_code == 0, first.output
    assert f"database: sqlite:///{state / 'facmon.db'}" in first.stdout
    assert "before: none (empty database)" in first.stdout
    assert f"after: {head_revision()} (newest)" in first.stdout
    again = run("db", "upgrade", state=state)
    assert f"before: {head_revision()} (newest)\nafter: {head_revision()} (newest)" in again.stdout
    assert run("db", "current", "--check", state=state).exit_code == 0


def test_an_older_schema_is_upgraded(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    engine = make_engine(f"sqlite:///{state / 'facmon.db'}")
    create_schema(engine, "0007")
    engine.dispose()
    assert "newest: " in run("db", "current", state=state).stdout
    upgraded = run("db", "upgrade", state=state)
    assert "before: 0007\n" in upgraded.stdout
    assert f"after: {head_revision()} (newest)" in upgraded.stdout


def test_upgrades_started_together_take_turns(tmp_path: Path) -> None:
    """systemd starts rules, notifier and the API at once, each upgrading first: one creates the schema, the others
    find it done."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACMON_")} | {"FACMON_STATE_DIR": str(tmp_path)}
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "facmon", "db", "upgrade"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0], [err for _, err in outputs]
    befores = sorted(line for out, _ in outputs for line in out.splitlines() if line.startswith("before:"))
    assert befores == [f"before: {head_revision()} (newest)"] * 2 + ["before: none (empty database)"]


def test_a_database_of_a_newer_facmon_is_left_alone(tmp_path: Path) -> None:
    run("db", "upgrade", state=tmp_path)
    with sqlite3.connect(tmp_path / "facmon.db") as connection:
        connection.execute("UPDATE alembic_version SET version_num = '9999'")
    connection.close()
    refused = run("db", "upgrade", state=tmp_path)
    assert refused.exit_code == 2
    assert "schema revision 9999, which this facmon does not know" in refused.stderr
    current = run("db", "current", "--check", state=tmp_path)
    assert current.exit_code == 1
    assert "upgraded by a newer facmon" in current.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can be refused a database of another user")
def test_root_is_refused_a_database_of_the_services_user(tmp_path: Path) -> None:
    state = tmp_path / "state"
    run("db", "upgrade", state=state)
    nobody = 65534
    os.chown(state, nobody, nobody)
    os.chown(state / "facmon.db", nobody, nobody)
    for command in (("db", "upgrade"), ("backup", str(tmp_path / "b.db")), ("restore", str(tmp_path / "b.db"))):
        refused = run(*command, state=state)
        assert refused.exit_code == 2, refused.output
        assert "run this as that user" in refused.stderr
    assert sorted(p.name for p in state.iterdir()) == ["facmon.db", "facmon.db.upgrade-lock"], "no root-owned -wal"
