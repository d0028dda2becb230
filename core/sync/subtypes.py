"""Agreement subtype names as the sync keeps them: which lookup of its HaloPSA names a partner's subtypes (none until
someone sets it: lookup ids differ per tenant), checked against the subtype ids found on its agreements each time a
sync reads them whole (and when the lookup is set), and what the check found (core.halopsa.lookups decides).

A verified lookup's names replace the names taken before; an unverified one gives none, and the names taken before
stay, marked not verified, until a verified lookup replaces them. A name set in the console always wins (kept in the
same rows, never touched here).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, select, update
from sqlalchemy.engine import Connection, Engine

from core.halopsa.client import HaloClient, SubtypeLookup
from core.store.tables import AGREEMENT_TABLE, SUBTYPE_LOOKUP_TABLE, SUBTYPE_NAME_TABLE, SubtypeLookupState


def lookup_of(conn: Connection, partner_id: int) -> Any:
    """The partner's subtype lookup row (None: never set)."""
    return conn.execute(select(SUBTYPE_LOOKUP_TABLE).where(SUBTYPE_LOOKUP_TABLE.c.partner_id == partner_id)).first()


def stored_subtype_ids(conn: Connection, partner_id: int) -> set[int]:
    """The subtype ids on the partner's synced agreements."""
    agr = AGREEMENT_TABLE.c
    return set(conn.scalars(select(agr.subtype_id).distinct().where(agr.partner_id == partner_id,
                                                                    agr.subtype_id.is_not(None))))


def unverify_names(conn: Connection, partner_id: int) -> None:
    """Keep the names taken from a lookup, marked not verified (the lookup changed, or its check failed)."""
    names = SUBTYPE_NAME_TABLE.c
    conn.execute(update(SUBTYPE_NAME_TABLE).where(names.partner_id == partner_id, names.lookup_verified)
                 .values(lookup_verified=False))


def _take_names(conn: Connection, partner_id: int, found: dict[int, str]) -> None:
    """The verified lookup's names replace those taken before (only what differs is written, so a sync that finds
    them unchanged writes nothing); a subtype it does not name loses its lookup name."""
    names = SUBTYPE_NAME_TABLE.c
    of_partner = names.partner_id == partner_id
    rows = conn.execute(select(names.subtype_id, names.lookup_name, names.lookup_verified).where(of_partner))
    known = {row.subtype_id: (row.lookup_name, bool(row.lookup_verified)) for row in rows}
    gone = [subtype_id for subtype_id, (name, _) in known.items() if subtype_id not in found and name is not None]
    if gone:
        conn.execute(update(SUBTYPE_NAME_TABLE).where(of_partner, names.subtype_id.in_(gone))
                     .values(lookup_name=None, lookup_verified=False))
        conn.execute(delete(SUBTYPE_NAME_TABLE).where(of_partner, names.subtype_id.in_(gone),
                                                      names.override_name.is_(None)))
    for subtype_id, name in found.items():
        if subtype_id not in known:
            conn.execute(SUBTYPE_NAME_TABLE.insert().values(partner_id=partner_id, subtype_id=subtype_id,
                                                            lookup_name=name, lookup_verified=True))
        elif known[subtype_id] != (name, True):
            conn.execute(update(SUBTYPE_NAME_TABLE).where(of_partner, names.subtype_id == subtype_id)
                         .values(lookup_name=name, lookup_verified=True))


def record_check(conn: Connection, partner_id: int, result: SubtypeLookup, *, now: datetime) -> bool:
    """Keep what a check of lookup `result.lookup_id` found, unless the partner's lookup was changed meanwhile;
    returns whether it was kept."""
    lookup = SUBTYPE_LOOKUP_TABLE.c
    kept = conn.execute(
        update(SUBTYPE_LOOKUP_TABLE)
        .where(and_(lookup.partner_id == partner_id, lookup.lookup_id == result.lookup_id))
        .values(state=SubtypeLookupState.VERIFIED if result.verified else SubtypeLookupState.UNVERIFIED,
                finding=result.finding, checked_at=now)
    ).rowcount == 1
    if kept and result.verified:
        _take_names(conn, partner_id, dict(result.names))
    elif kept:
        unverify_names(conn, partner_id)
    return kept


def note_unchecked(conn: Connection, partner_id: int, lookup_id: int, why: str) -> None:
    """Lookup `lookup_id` could not be checked when it was set (HaloPSA unreachable, the key wrong…): say why."""
    lookup = SUBTYPE_LOOKUP_TABLE.c
    conn.execute(update(SUBTYPE_LOOKUP_TABLE).where(lookup.partner_id == partner_id, lookup.lookup_id == lookup_id)
                 .values(finding=f"It could not be checked when it was set: {why} The next sync that reads "
                                 "agreements checks it."))


def check(engine: Engine, client: HaloClient, partner_id: int, subtype_ids: Collection[int], *,
          now: datetime) -> SubtypeLookup | None:
    """Check the partner's subtype lookup, when one is set, against `subtype_ids` (those on its agreements) and keep
    what it found; None when no lookup is set."""
    with engine.connect() as conn:
        found = lookup_of(conn, partner_id)
    if found is None or found.lookup_id is None:
        return None
    result = client.subtype_lookup(found.lookup_id, subtype_ids)
    with engine.begin() as conn:
        record_check(conn, partner_id, result, now=now)
    return result
