"""Agreement subtype names from a HaloPSA lookup, taken only when the lookup is verified.

A contract names its subtype by an integer id only (`subtype`); the names live in one of the tenant's lookup tables,
whose id differs per tenant (reference 11: 33, 76, 82 and 147 seen; nothing maps 58 to agreement subtypes), and a
tenant may answer `GET /api/Lookup?lookupid=N` with the rows of some other table. So a lookup names subtypes only
when its rows say they belong to lookup N (`lookupid`) and name every subtype id found on the partner's agreements;
otherwise no name is taken from it and the finding says why, in plain words.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.halopsa.records import INT64_MAX

SHOWN_IDS = 8
"""How many ids a finding lists before "and N more"."""


@dataclass(frozen=True)
class SubtypeLookup:
    """What one lookup says about agreement subtype names: `names` (of the subtype ids checked) is empty unless
    `verified`."""

    lookup_id: int
    verified: bool
    finding: str
    names: Mapping[int, str] = field(default_factory=dict)


def _ids_text(ids: Collection[int]) -> str:
    ordered = sorted(ids)
    shown = ", ".join(str(number) for number in ordered[:SHOWN_IDS])
    return shown if len(ordered) <= SHOWN_IDS else f"{shown} and {len(ordered) - SHOWN_IDS:,} more"


def _whole(value: Any) -> int | None:
    """A positive id within 64 bits, else None (a bool, a float, text or an out-of-range number is no id)."""
    return value if type(value) is int and 0 < value <= INT64_MAX else None


def _name(row: Mapping[str, Any]) -> str | None:
    name = row.get("name")
    if not isinstance(name, str):
        name = row.get("value")
    if not isinstance(name, str):
        return None
    return name.replace("\x00", "").strip() or None  # no stored text holds a NUL (PostgreSQL refuses them)


def unreadable(lookup_id: int, why: str) -> SubtypeLookup:
    """The lookup could not be read (absent, refused, not a list): not verified, for that reason."""
    return SubtypeLookup(lookup_id, False, f"Lookup {lookup_id} could not be read: {why}")


def verify(rows: list[Any], *, lookup_id: int, subtype_ids: Collection[int]) -> SubtypeLookup:
    """The names lookup `lookup_id` gives the ids of `subtype_ids` (those found on the agreements), when its rows are
    that lookup's and name every one of them; otherwise not verified, with why."""
    objects = [row for row in rows if isinstance(row, dict)]
    own = [row for row in objects if _whole(row.get("lookupid")) == lookup_id]
    if not objects:
        return SubtypeLookup(lookup_id, False, f"Lookup {lookup_id} has no rows in this HaloPSA.")
    if not own:
        others = {number for row in objects if (number := _whole(row.get("lookupid"))) is not None}
        answered = (f"rows of lookup {_ids_text(others)}" if others
                    else "rows that do not say which lookup they belong to")
        return SubtypeLookup(lookup_id, False, f"HaloPSA answered lookup {lookup_id} with {answered}, so this tenant "
                                               "does not pick lookups by id there; no names were taken.")
    names = {number: name for row in own
             if (number := _whole(row.get("id"))) is not None and (name := _name(row)) is not None}
    if not subtype_ids:
        return SubtypeLookup(lookup_id, False, f"No synced agreement has a subtype yet, so lookup {lookup_id} cannot "
                                               "be checked; the next sync that reads agreements checks it.")
    missing = set(subtype_ids) - names.keys()
    if missing:
        return SubtypeLookup(lookup_id, False, f"Lookup {lookup_id} has no name for subtype "
                                               f"{'id' if len(missing) == 1 else 'ids'} {_ids_text(missing)} found on "
                                               "the synced agreements, so it is not their subtype list; no names "
                                               "were taken.")
    found = len(set(subtype_ids))
    return SubtypeLookup(lookup_id, True, f"Lookup {lookup_id} names all {found:,} subtype "
                                          f"{'id' if found == 1 else 'ids'} found on the synced agreements.",
                         {number: names[number] for number in sorted(set(subtype_ids))})
