"""This folder's tests run on SQLite and on the real PostgreSQL server, each test that reaches the database twice
(tests/databases.py)."""

from tests.databases import on_both_databases as pytest_generate_tests

__all__ = ["pytest_generate_tests"]
