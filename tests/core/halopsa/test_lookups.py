"""Subtype names from a lookup: taken only from rows of the lookup asked, and only when they name every subtype id
found on the agreements; otherwise not verified, with why."""

from __future__ import annotations

import pytest

from core.halopsa.lookups import verify

SUBTYPES_AT_76 = [{"id": 1, "name": "Managed Services", "lookupid": 76}, {"id": 2, "name": " Backup ", "lookupid": 76},
                  {"id": 3, "value": "Microsoft 365", "lookupid": 76}]  # fmt: skip
PRIORITIES_AT_33 = [{"id": 1, "name": "Critical", "lookupid": 33}, {"id": 2, "name": "High", "lookupid": 33},
                    {"id": 3, "name": "Medium", "lookupid": 33}]  # fmt: skip


def test_a_lookup_naming_every_subtype_id_seen_is_verified_and_names_them() -> None:
    found = verify([*SUBTYPES_AT_76, *PRIORITIES_AT_33, "junk"], lookup_id=76, subtype_ids={1, 3})
    assert verify(SUBTYPES_AT_76, lookup_id=76, subtype_ids={2}).names == {2: "Backup"}  # trimmed
    assert found.verified
    assert dict(found.names) == {1: "Managed Services", 3: "Microsoft 365"}  # lookup 76's names of the ids seen
    assert found.finding == "Lookup 76 names all 2 subtype ids found on the synced agreements."


def test_rows_of_another_lookup_are_never_taken_even_when_their_ids_match() -> None:
    """A tenant whose Lookup ignores lookupid answers another table: its row ids 1-3 cover the subtypes seen, but the
    rows say they are lookup 33's."""
    found = verify(PRIORITIES_AT_33, lookup_id=76, subtype_ids={1, 2})
    assert not found.verified and not found.names
    assert found.finding == ("HaloPSA answered lookup 76 with rows of lookup 33, so this tenant does not pick lookups "
                             "by id there; no names were taken.")


def test_rows_that_do_not_say_their_lookup_are_not_taken() -> None:
    found = verify([{"id": 1, "name": "Managed Services"}, {"id": 2, "name": "Backup", "lookupid": "76"}],
                   lookup_id=76, subtype_ids={1})
    assert not found.verified and "rows that do not say which lookup they belong to" in found.finding


def test_a_lookup_missing_a_subtype_id_seen_is_not_the_subtype_list() -> None:
    found = verify(SUBTYPES_AT_76, lookup_id=76, subtype_ids={1, 2, 9, 12})
    assert not found.verified and not found.names
    assert found.finding == ("Lookup 76 has no name for subtype ids 9, 12 found on the synced agreements, so it is "
                             "not their subtype list; no names were taken.")


@pytest.mark.parametrize(("rows", "subtype_ids", "says"), [
    ([], {1}, "Lookup 76 has no rows in this HaloPSA."),
    (SUBTYPES_AT_76, set(), "No synced agreement has a subtype yet"),
    ([{"id": 1, "name": "  ", "lookupid": 76}, {"id": True, "name": "x", "lookupid": 76}], {1},
     "no name for subtype id 1 "),
])
def test_nothing_to_name_or_check_is_not_verified(rows, subtype_ids, says) -> None:
    found = verify(rows, lookup_id=76, subtype_ids=subtype_ids)
    assert not found.verified and not found.names and says in found.finding


def test_a_long_list_of_missing_ids_is_cut_short() -> None:
    found = verify(SUBTYPES_AT_76, lookup_id=76, subtype_ids=set(range(100, 120)))
    assert "ids 100, 101, 102, 103, 104, 105, 106, 107 and 12 more found" in found.finding
