"""Alembic migrations of the work-order database; see env.py."""
