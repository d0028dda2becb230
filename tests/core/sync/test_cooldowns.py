from datetime import timedelta

import pytest
from sqlalchemy import select

from core.errors import CooldownActive, SyncAlreadyRunning
from core.store.tables import AUDIT_TABLE, RunKind, RunStatus
from core.sync import cooldowns, runs
from tests.support.clock import NOW
from tests.support.factories import add_partner


def start(engine, settings, partner_id, kind=RunKind.FETCH_NEW_DATA, now=NOW, claim=True):
    return runs.start_run(engine, partner_id=partner_id, partner_name="Acme MSP", kind=kind, trigger="manual",
                          actor="ops@example.com", now=now, settings=settings, claim_cooldown=claim)


def state(engine, partner_id, kind):
    with engine.connect() as conn:
        return cooldowns.states(conn, partner_id, now=NOW)[kind]


def test_claim_locks_for_an_hour_and_says_when_it_is_available(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW)
    run_id = start(engine, settings, partner_id)
    runs.finish_run(engine, run_id, partner_id, status=RunStatus.SUCCEEDED, now=NOW)
    with pytest.raises(CooldownActive) as info:
        start(engine, settings, partner_id, now=NOW + timedelta(minutes=20))
    assert info.value.available_at == NOW + timedelta(hours=1)
    assert "40 min" in info.value.message and "2026-11-02 13:00:00 UTC" in info.value.message
    assert state(engine, partner_id, "fetch_new_data").last_actor == "ops@example.com"
    again = start(engine, settings, partner_id, now=NOW + timedelta(hours=1))
    assert again > run_id


def test_unpaid_cooldown_is_twelve_hours_and_independent(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW)
    run_id = start(engine, settings, partner_id, kind=RunKind.FETCH_UNPAID)
    runs.finish_run(engine, run_id, partner_id, status=RunStatus.SUCCEEDED, now=NOW)
    assert state(engine, partner_id, "fetch_unpaid").available_at == NOW + timedelta(hours=12)
    assert state(engine, partner_id, "fetch_new_data").available_at is None
    with pytest.raises(CooldownActive, match="11 h 59 min"):
        start(engine, settings, partner_id, kind=RunKind.FETCH_UNPAID, now=NOW + timedelta(seconds=30))


def test_refused_start_leaves_no_run_behind(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW)
    first = start(engine, settings, partner_id)
    with pytest.raises(SyncAlreadyRunning):
        start(engine, settings, partner_id, kind=RunKind.FETCH_UNPAID)
    runs.finish_run(engine, first, partner_id, status=RunStatus.SUCCEEDED, now=NOW)
    with pytest.raises(CooldownActive):
        start(engine, settings, partner_id)
    with engine.connect() as conn:
        count = conn.exec_driver_sql("select count(*) from syncrun").scalar()
        unpaid = cooldowns.states(conn, partner_id, now=NOW)["fetch_unpaid"]
    assert count == 1
    assert unpaid.available_at is None


def test_refund_gives_the_cooldown_back_only_to_its_own_run(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW)
    run_id = start(engine, settings, partner_id)
    with engine.begin() as conn:
        cooldowns.refund(conn, partner_id=partner_id, kind="fetch_new_data", run_id=run_id + 99)
    assert state(engine, partner_id, "fetch_new_data").available_at == NOW + timedelta(hours=1)
    with engine.begin() as conn:
        cooldowns.refund(conn, partner_id=partner_id, kind="fetch_new_data", run_id=run_id)
    assert state(engine, partner_id, "fetch_new_data").available_at is None


def test_cooldown_lengths_are_configurable(engine, settings):
    from dataclasses import replace

    short = replace(settings, cooldown_new_data_s=5)
    partner_id = add_partner(engine, short, now=NOW)
    run_id = start(engine, short, partner_id)
    runs.finish_run(engine, run_id, partner_id, status=RunStatus.SUCCEEDED, now=NOW)
    start(engine, short, partner_id, now=NOW + timedelta(seconds=5))


def test_a_refused_press_is_dated_in_the_audit_log_for_the_adoption_page(engine, settings):
    """Issue 14: refusals were only counted, so the Adoption page's dates could not apply to them."""
    partner_id = add_partner(engine, settings, now=NOW)
    with engine.begin() as conn:
        cooldowns.record_refusal(conn, partner_id=partner_id, kind=RunKind.FETCH_UNPAID, actor="ops@example.com",
                                 now=NOW)
        cooldowns.record_refusal(conn, partner_id=partner_id, kind=RunKind.FETCH_UNPAID)  # undated: counted only

    with engine.connect() as conn:
        events = conn.execute(select(AUDIT_TABLE).where(AUDIT_TABLE.c.action == "manual_fetch_refused")).all()
    assert [(e.at, e.actor, e.partner_id, e.detail) for e in events] == [
        (NOW, "ops@example.com", partner_id, "Fetch unpaid invoices: refused by the cooldown")]
    assert state(engine, partner_id, "fetch_unpaid").refused_count == 2
