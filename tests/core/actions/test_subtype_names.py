"""Setting a partner's subtype lookup (checked at once against HaloPSA) and naming its subtypes: validated with
messages that say what to do, allowed to customer success and the partner's own users only, audited."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import func, select

from core.access import Principal
from core.actions import subtype_names
from core.console import subtypes
from core.errors import AccessDenied, BadInput, NotFound
from core.store import tables
from core.store.tables import AUDIT_TABLE, SUBTYPE_NAME_TABLE, Role, SubtypeLookupState
from core.sync import connector
from halo_emulator import FaultRule, HaloEmulator
from tests.support.clock import NOW
from tests.support.factories import add_agreements, add_partner

CS = Principal(Role.CS, "cs@example.com")
PM = Principal(Role.PM, "pm@example.com")
EMU = HaloEmulator(seed=3, invoices=20, rate_limit=None)  # only read: its lookups and credentials


@pytest.fixture
def fast(settings):
    return replace(settings, max_attempts=2, backoff_cap_s=0.01)


@pytest.fixture
def acme(engine, settings):
    """A partner on EMU's tenant whose agreements carry subtypes 1-3, named by a verified lookup 76."""
    partner_id = add_partner(engine, settings, now=NOW, client_id=EMU.client_id, client_secret=EMU.client_secret)
    add_agreements(engine, partner_id, ["Managed Services", "Backup", "Microsoft 365"], now=NOW)
    return partner_id


def _owner(partner_id: int) -> Principal:
    return Principal(Role.PARTNER, "ap@acme.example", partner_id)


def _audit(engine) -> list:
    with engine.connect() as conn:
        return conn.execute(select(AUDIT_TABLE).order_by(AUDIT_TABLE.c.id)).all()


def _rows(engine) -> int:
    with engine.connect() as conn:
        return sum(conn.scalar(select(func.count()).select_from(table)) or 0
                   for table in (SUBTYPE_NAME_TABLE, tables.SUBTYPE_LOOKUP_TABLE, AUDIT_TABLE))


def _set_lookup(engine, settings, partner_id, lookup_id, *, who=CS, emu=EMU):
    return subtype_names.set_lookup(engine, who, partner_id, lookup_id, now=NOW, settings=settings,
                                    client_factory=connector.stored_client_factory(settings, transport=emu.transport()))


def _shown(engine, partner_id) -> dict[int, str]:
    frame = subtypes.subtype_names(engine, CS, partner_id).subtypes
    return dict(zip(frame["subtype_id"], frame["subtype"], strict=True))


def test_a_name_set_here_is_trimmed_wins_over_the_lookup_and_is_audited(engine, acme):
    shown = subtype_names.set_name(engine, _owner(acme), acme, 2, "  Backup plans ", now=NOW)

    assert shown == "Backup plans (id 2)" and _shown(engine, acme)[2] == "Backup plans (id 2)"
    [event] = _audit(engine)
    assert (event.action, event.actor, event.partner_id) == ("subtype_names", "ap@acme.example", acme)
    assert event.detail == "Subtype 2 named “Backup plans” here; was shown as “Backup (id 2)”"


def test_clearing_a_name_set_here_shows_the_lookups_again(engine, acme):
    subtype_names.set_name(engine, CS, acme, 2, "Backup plans", now=NOW)

    assert subtype_names.set_name(engine, CS, acme, 2, " ", now=NOW) == "Backup (id 2)"
    assert _audit(engine)[-1].detail == ("Name set here for subtype 2 cleared; shown as “Backup (id 2)”, was "
                                         "“Backup plans (id 2)”")
    with pytest.raises(BadInput, match="has no name set here to clear"):
        subtype_names.set_name(engine, CS, acme, 2, "", now=NOW)


@pytest.mark.parametrize(("subtype_id", "name", "field", "says"), [
    (2, "B" * 101, "subtype_name", "Subtype name must be 100 characters or fewer"),
    (2, "Back\nup", "subtype_name", "contains a control character"),
    (2, "Back\tup", "subtype_name", "contains a control character"),
    (2, "Backup\x00", "subtype_name", "contains a control character"),
    (9, "Hosting", "subtype_id", "No synced agreement has subtype 9"),
    (0, "Hosting", "subtype_id", "Pick the agreement subtype from the list"),
    (2**63, "Hosting", "subtype_id", "Pick the agreement subtype from the list"),
])
def test_a_bad_name_or_subtype_is_refused_with_what_to_do_and_nothing_saved(engine, acme, subtype_id, name, field,
                                                                            says):
    before = _rows(engine)
    with pytest.raises(BadInput) as refused:
        subtype_names.set_name(engine, CS, acme, subtype_id, name, now=NOW)
    assert refused.value.field == field and says in refused.value.message
    assert _rows(engine) == before


def test_the_longest_name_allowed_is_taken(engine, acme):
    assert subtype_names.set_name(engine, CS, acme, 1, "M" * 100, now=NOW) == f"{'M' * 100} (id 1)"


@pytest.mark.parametrize("call", [
    lambda engine, settings, who, pid: subtype_names.set_name(engine, who, pid, 2, "Mine now", now=NOW),
    lambda engine, settings, who, pid: _set_lookup(engine, settings, pid, 76, who=who),
    lambda engine, settings, who, pid: subtypes.subtype_names(engine, who, pid),
])
def test_product_managers_and_other_partners_are_refused(engine, settings, acme, call):
    other = add_partner(engine, settings, name="Globex Partners", now=NOW)
    before = _rows(engine)
    for outsider in (PM, Principal(Role.PARTNER, "ap@globex.example", other)):
        with pytest.raises(AccessDenied):
            call(engine, settings, outsider, acme)
    assert _rows(engine) == before
    call(engine, settings, _owner(acme), acme)  # the partner's own user may


def test_the_tenants_subtype_lookup_is_verified_at_once_and_its_names_replace_the_ones_before(engine, fast, acme):
    done = _set_lookup(engine, fast, acme, EMU.subtype_lookup_id)

    assert done.checked is not None and done.checked.verified
    assert done.message == (f"Lookup {EMU.subtype_lookup_id} is verified: Lookup {EMU.subtype_lookup_id} names all "
                            "3 subtype ids found on the synced agreements.")
    assert _shown(engine, acme) == {1: "Managed Services (id 1)", 2: "Backup (id 2)", 3: "Microsoft 365 (id 3)"}
    lookup = subtypes.subtype_names(engine, CS, acme).lookup
    assert (lookup.lookup_id, lookup.state, lookup.set_by) == (EMU.subtype_lookup_id, SubtypeLookupState.VERIFIED,
                                                               CS.user)
    assert _audit(engine)[-1].detail == f"Subtype lookup set to {EMU.subtype_lookup_id} (was 76)"


def test_a_lookup_that_is_not_the_subtypes_gives_no_names_and_says_why(engine, fast, acme):
    done = _set_lookup(engine, fast, acme, 58)

    assert done.checked is not None and not done.checked.verified
    assert done.message == "Lookup 58 is saved but not verified: Lookup 58 has no rows in this HaloPSA."
    assert _shown(engine, acme)[2] == "Backup (id 2, name not verified)"  # taken before: kept, marked
    assert subtypes.subtype_names(engine, CS, acme).lookup.state == SubtypeLookupState.UNVERIFIED


def test_clearing_the_lookup_keeps_its_names_marked_not_verified(engine, fast, acme):
    _set_lookup(engine, fast, acme, EMU.subtype_lookup_id)

    done = _set_lookup(engine, fast, acme, None)

    assert done.checked is None and "No subtype lookup is set now" in done.message
    assert _shown(engine, acme)[3] == "Microsoft 365 (id 3, name not verified)"
    assert subtypes.subtype_names(engine, CS, acme).lookup.summary.startswith("No lookup is set")
    assert _audit(engine)[-1].detail == f"Subtype lookup set to none (was {EMU.subtype_lookup_id})"


def test_a_lookup_set_while_halopsa_is_down_is_saved_and_left_to_the_next_sync(engine, fast, acme):
    down = HaloEmulator(seed=3, invoices=20, rate_limit=None)
    down.add_fault(FaultRule(kind="status", status=503, times=10**6))

    done = _set_lookup(engine, fast, acme, down.subtype_lookup_id, emu=down)

    assert done.checked is None and "could not be checked" in done.message and "HTTP 503" in done.why
    lookup = subtypes.subtype_names(engine, CS, acme).lookup
    assert lookup.state == SubtypeLookupState.UNCHECKED
    assert lookup.summary.startswith(f"Lookup {down.subtype_lookup_id} (set by cs@example.com) is not checked yet. "
                                     "It could not be checked when it was set: ")
    assert lookup.summary.endswith("The next sync that reads agreements checks it.")


@pytest.mark.parametrize("lookup_id", [0, -1, 2**31, True, "76"])
def test_a_lookup_id_that_is_no_whole_number_in_range_is_refused(engine, fast, acme, lookup_id):
    before = _rows(engine)
    with pytest.raises(BadInput) as refused:
        _set_lookup(engine, fast, acme, lookup_id)
    assert refused.value.field == "lookup_id" and "whole number from 1 to 2,147,483,647" in refused.value.message
    assert _rows(engine) == before


def test_a_partner_without_a_connection_is_told_to_connect_first(engine, fast):
    with pytest.raises(NotFound, match="connect it on the Connection page first"):
        _set_lookup(engine, fast, 9999, 76)
