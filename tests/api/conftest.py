"""The work-order database every API test starts from: a fresh SQLite file at the newest schema."""

from __future__ import annotations
