"""Agreement subtype names as the sync keeps them (issue 12): no lookup is asked until one is set; a set lookup is
checked each time a sync reads the agreements whole, against the subtype ids they carry; a verified lookup names the
subtypes, one that is not gives no names (those taken before stay, marked not verified) and the run says why."""

from dataclasses import replace

import pytest
from sqlalchemy import select

from core.access import Principal
from core.actions import connect as connections
from core.actions import subtype_names
from core.console import agreements
from core.halopsa.lookups import SubtypeLookup
from core.store.tables import RUN_TABLE, SUBTYPE_NAME_TABLE, Role, RunKind, RunStatus, SubtypeLookupState
from core.sync import connector, subtypes
from core.sync import engine as sync_engine
from halo_emulator import HaloEmulator
from tests.support.clock import NOW
from tests.support.factories import add_partner
from tests.support.subtype_names import name_subtypes

CS = Principal(role=Role.CS, user="cs@example.com")


@pytest.fixture
def sync_settings(settings):
    return replace(settings, page_size=100, max_attempts=2, backoff_cap_s=0.01, rate_limit_requests=10**6)


def _connect(engine, settings, emu) -> int:
    form = connections.ConnectionForm(partner_name="Acme MSP", app_domain="https://acme.halopsa.com",
                                      client_id=emu.client_id, client_secret=emu.client_secret)
    partner_id, _ = connections.connect(engine, CS, form, now=emu.now, settings=settings, transport=emu.transport())
    return partner_id


def _factory(settings, emu):
    return connector.stored_client_factory(settings, transport=emu.transport())


def _run(engine, settings, emu, partner_id, kind):
    result = sync_engine.run_sync(engine, partner_id=partner_id, kind=kind, trigger="schedule", actor="test",
                                  now=emu.now, settings=settings, client_factory=_factory(settings, emu))
    assert result.status == RunStatus.SUCCEEDED, result.error
    with engine.connect() as conn:
        return conn.scalar(select(RUN_TABLE.c.message).where(RUN_TABLE.c.id == result.run_id)) or ""


def _shown(engine, partner_id) -> set[str]:
    return set(agreements.subtype_summary(engine, CS, partner_id, now=NOW)["subtype"])


def _lookup(engine, partner_id):
    with engine.connect() as conn:
        return subtypes.lookup_of(conn, partner_id)


def _names(engine, partner_id) -> dict[int, tuple[str | None, bool]]:
    with engine.connect() as conn:
        rows = conn.execute(select(SUBTYPE_NAME_TABLE).where(SUBTYPE_NAME_TABLE.c.partner_id == partner_id)).all()
    return {row.subtype_id: (row.lookup_name, row.lookup_verified) for row in rows}


def test_without_a_subtype_lookup_no_lookup_is_asked_and_subtypes_show_by_id(engine, sync_settings):
    emu = HaloEmulator(seed=4, invoices=200, start=NOW, rate_limit=None)
    partner_id = _connect(engine, sync_settings, emu)

    _run(engine, sync_settings, emu, partner_id, RunKind.BACKFILL)

    assert emu.stats.entries("/api/Lookup") == []  # lookup 58 is no longer assumed
    assert _shown(engine, partner_id) == {f"Subtype {c['subtype']}" for c in emu.contracts.values() if c["subtype"]}


def test_a_set_lookup_is_checked_by_each_sync_reading_agreements_and_names_the_subtypes(engine, sync_settings):
    emu = HaloEmulator(seed=4, invoices=200, start=NOW, rate_limit=None)
    partner_id = _connect(engine, sync_settings, emu)
    # set before any sync: checked at once, but no agreement has a subtype yet
    done = subtype_names.set_lookup(engine, CS, partner_id, emu.subtype_lookup_id, now=NOW, settings=sync_settings,
                                    client_factory=_factory(sync_settings, emu))
    assert done.checked is not None and not done.checked.verified
    assert "No synced agreement has a subtype yet" in _lookup(engine, partner_id).finding

    message = _run(engine, sync_settings, emu, partner_id, RunKind.BACKFILL)

    found = _lookup(engine, partner_id)
    assert found.state == SubtypeLookupState.VERIFIED and found.finding.startswith(f"Lookup {emu.subtype_lookup_id} "
                                                                                   "names all ")
    assert "Managed Services (id 1)" in _shown(engine, partner_id)
    assert "subtype names" not in message
    asked = len(emu.stats.entries("/api/Lookup"))
    _run(engine, sync_settings, emu, partner_id, RunKind.FETCH_NEW_DATA)  # reads no agreements: nothing to check
    assert len(emu.stats.entries("/api/Lookup")) == asked
    _run(engine, sync_settings, emu, partner_id, RunKind.SCHEDULED)
    assert len(emu.stats.entries("/api/Lookup")) == asked + 1


def test_a_lookup_answering_another_table_is_not_verified_the_names_before_stay_marked_and_the_run_says_why(
        engine, sync_settings):
    emu = HaloEmulator(seed=4, invoices=200, start=NOW, rate_limit=None, lookup_ignores_id=True)
    partner_id = _connect(engine, sync_settings, emu)
    _run(engine, sync_settings, emu, partner_id, RunKind.BACKFILL)
    name_subtypes(engine, partner_id, {1: "Managed Services", 2: "Backup"}, now=NOW, lookup_id=emu.subtype_lookup_id)

    message = _run(engine, sync_settings, emu, partner_id, RunKind.SCHEDULED)

    found = _lookup(engine, partner_id)
    other = emu.config.lookup_ids[1]
    assert found.state == SubtypeLookupState.UNVERIFIED
    assert f"HaloPSA answered lookup {emu.subtype_lookup_id} with rows of lookup {other}" in found.finding
    assert f"Agreement subtype names: HaloPSA answered lookup {emu.subtype_lookup_id}" in message
    assert _names(engine, partner_id) == {1: ("Managed Services", False), 2: ("Backup", False)}
    assert "Managed Services (id 1, name not verified)" in _shown(engine, partner_id)
    assert "Critical" not in " ".join(_shown(engine, partner_id))  # the other table's row 1 is never a name


def test_a_verified_lookup_replaces_the_names_before_and_a_subtype_it_lacks_loses_its_lookup_name(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW)
    name_subtypes(engine, partner_id, {1: "Old managed", 7: "Gone"}, now=NOW)
    with engine.begin() as conn:
        kept = subtypes.record_check(conn, partner_id, SubtypeLookup(76, True, "ok", {1: "Managed Services"}), now=NOW)
    assert kept and _names(engine, partner_id) == {1: ("Managed Services", True)}


def test_a_check_of_a_lookup_changed_meanwhile_is_not_kept(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW)
    name_subtypes(engine, partner_id, {1: "Managed Services"}, now=NOW, lookup_id=76)
    with engine.begin() as conn:
        kept = subtypes.record_check(conn, partner_id, SubtypeLookup(33, False, "another lookup's check"), now=NOW)
    assert not kept
    assert _lookup(engine, partner_id).state == SubtypeLookupState.VERIFIED
    assert _names(engine, partner_id) == {1: ("Managed Services", True)}

