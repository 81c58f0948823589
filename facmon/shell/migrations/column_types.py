"""The column types the revisions share: `Id`, a 64-bit integer key (INTEGER on SQLite, so that it is the rowid and
autoincrements), and `Utc`, a time with its zone.

Frozen: applied revisions build their tables with these, so changing one would change what they meant. A revision
that needs another type spells it out itself (revisions import nothing from the table modules, see 0001).
"""

from __future__ import annotations

import sqlalchemy as sa

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Utc = sa.DateTime(timezone=True)
