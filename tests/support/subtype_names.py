"""Agreement subtype names for a test's partner, as a verified lookup would have given them (core.sync.subtypes
stores them; only the lookup's check is skipped)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Engine

from core.halopsa.lookups import SubtypeLookup
from core.store.tables import SUBTYPE_LOOKUP_TABLE, SubtypeLookupState
from core.sync import subtypes

LOOKUP_ID = 76  # one of the lookup ids seen on real tenants (reference 11)


def name_subtypes(engine: Engine, partner_id: int, names: dict[int, str], *, now: datetime,
                  lookup_id: int = LOOKUP_ID) -> None:
    """Set the partner's lookup and keep `names` (subtype id -> name) as its verified names."""
    with engine.begin() as conn:
        if subtypes.lookup_of(conn, partner_id) is None:
            conn.execute(SUBTYPE_LOOKUP_TABLE.insert().values(
                partner_id=partner_id, lookup_id=lookup_id, state=SubtypeLookupState.UNCHECKED, set_by="tests",
                set_at=now))
        found = SubtypeLookup(lookup_id, True, f"Lookup {lookup_id} names every subtype id (test data).", names)
        assert subtypes.record_check(conn, partner_id, found, now=now)
