"""`facmon restore`: the backup is checked before anything is touched, a database a process has open or one with
newer activity is not replaced (the latter unless --force), the replaced database is kept, and the restored one is
upgraded to the newest schema."""

from __future__ import annotations

import re
import shutil
import sqlite3
from datetime import timedelta
from pathlib import Path

from facmon.kernel.db import make_engine
from facmon.shell.migrations.schema import create_schema
from facmon.shell.ops.database import head_revision
from rules.engine import load_rules
from tests.shell.ops.support import START, open_work_order, run, sqlite_rows, wait_until
from tests.shell.ops.test_backup import Inserter

RULES = load_rules()


def _database(state: Path, revision: str = "head", work_orders: int = 0) -> Path:
    state.mkdir()
    path = state / "facmon.db"
    engine = make_engine(f"sqlite:///{path}")
    create_schema(engine, revision)
    for index in range(work_orders):
        open_work_order(engine, RULES, index, START + timedelta(minutes=index))
    engine.dispose()
    return path


def _work_orders(path: Path) -> int:
    count = sqlite_rows(path, "SELECT count(*) FROM work_orders")[0][0]
    assert isinstance(count, int)
    return count


def test_a_damaged_or_foreign_backup_is_refused_before_anything_is_touched(tmp_path: Path) -> None:
    _database(tmp_path / "source", work_orders=1)
    backup = tmp_path / "wo.db"
    assert run("backup", str(backup), state=tmp_path / "source").exit_code == 0
    target = tmp_path / "target"

    text = tmp_path / "notes.txt"
    text.write_text("not a database\n")
    truncated = tmp_path / "truncated.db"
    truncated.write_bytes(backup.read_bytes()[: backup.stat().st_size // 2])
    from_newer = tmp_path / "newer.db"
    shutil.copy(backup, from_newer)
    with sqlite3.connect(from_newer) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '9999'")
    connection.close()

    for bad, why in (
        (text, "not an SQLite database"),
        (truncated, "malformed"),
        (from_newer, "taken by a newer facmon"),
        (tmp_path / "missing.db", "no such file"),
    ):
        refused = run("restore", str(bad), state=target)
        assert refused.exit_code == 2, refused.output
        assert why in refused.stderr, refused.stderr
    assert not target.exists(), "nothing was created"


def test_restore_keeps_the_old_database_and_refuses_to_discard_newer_activity(tmp_path: Path) -> None:
    _database(tmp_path / "source", work_orders=2)
    backup = tmp_path / "wo.db"
    made = run("backup", str(backup), state=tmp_path / "source")
    assert made.exit_code == 0, made.output
    assert "2 work order(s) (2 open)" in made.stdout

    target_state = tmp_path / "target"
    first = run("restore", str(backup), state=target_state)
    assert first.exit_code == 0, first.output
    assert "kept" not in first.stdout, "there was nothing to keep"
    target = target_state / "facmon.db"
    assert _work_orders(target) == 2

    # The rules worker goes on: a third work order, newer than the backup.
    engine = make_engine(f"sqlite:///{target}")
    open_work_order(engine, RULES, 2, START + timedelta(hours=1))
    engine.dispose()
    refused = run("restore", str(backup), state=target_state)
    assert refused.exit_code == 2
    assert "newer activity (3 work order(s)" in refused.stderr
    assert "--force" in refused.stderr
    assert _work_orders(target) == 3, "untouched"

    forced = run("restore", "--force", str(backup), state=target_state)
    assert forced.exit_code == 0, forced.output
    kept_name = re.search(r"kept the database it replaces as (\S+)", forced.stdout)
    assert kept_name is not None, forced.stdout
    kept = Path(kept_name[1])
    assert re.fullmatch(r"facmon\.db\.before-restore-\d{8}T\d{6}Z", kept.name)
    assert _work_orders(kept) == 3, "the replaced database is kept whole"
    assert _work_orders(target) == 2
    assert f"schema revision {head_revision()} -> {head_revision()}" in forced.stdout


def test_a_database_a_process_has_open_is_not_replaced(tmp_path: Path) -> None:
    _database(tmp_path / "source", work_orders=1)
    backup = tmp_path / "wo.db"
    assert run("backup", str(backup), state=tmp_path / "source").exit_code == 0
    target = _database(tmp_path / "target")
    holder = Inserter(f"sqlite:///{target}")
    try:
        wait_until(lambda: len(holder.commits) >= 1, 60, "the other process's first work order")
        refused = run("restore", "--force", str(backup), state=tmp_path / "target")
    finally:
        assert holder.stop() == 0
    assert refused.exit_code == 2
    assert "open in a running process: stop the facmon services first" in refused.stderr
    assert not list(target.parent.glob("*.before-restore-*"))


def test_a_backup_of_an_older_schema_is_upgraded_after_restoring(tmp_path: Path) -> None:
    _database(tmp_path / "source", revision="0009")
    backup = tmp_path / "wo-0009.db"
    made = run("backup", str(backup), state=tmp_path / "source")
    assert made.exit_code == 0, made.output
    assert "schema revision 0009" in made.stdout
    restored = run("restore", str(backup), state=tmp_path / "target")
    assert restored.exit_code == 0, restored.output
    assert f"schema revision 0009 -> {head_revision()}" in restored.stdout
    assert run("db", "current", "--check", state=tmp_path / "target").exit_code == 0


def test_postgresql_is_backed_up_with_its_own_tools(tmp_path: Path) -> None:
    url = "postgresql+psycopg://facmon:s3cret@db.example/facmon"
    for command in ("backup", "restore"):
        refused = run(command, str(tmp_path / "wo.dump"), state=tmp_path, db_url=url)
        assert refused.exit_code == 2
        assert "pg_dump" in refused.stderr
        assert "pg_restore" in refused.stderr
        assert "s3cret" not in refused.output
