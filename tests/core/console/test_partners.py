from datetime import timedelta

import pytest

from core.access import Principal
from core.console import partners
from core.store.tables import Role, RunKind, RunStatus, RunTrigger
from core.sync import scheduler
from tests.support.clock import NOW
from tests.support.factories import add_partner, add_run

CS = Principal(role=Role.CS, user="cs@example.com")
HOUR = timedelta(hours=1)


def _line(engine, partner_id, now):
    return partners.freshness_line(engine, CS, partner_id, now=now, schedule_interval=HOUR)


@pytest.mark.parametrize("later", [timedelta(0), timedelta(minutes=1), timedelta(minutes=6)])
def test_a_failing_partners_next_automatic_sync_is_its_last_attempt_plus_the_interval_however_late_one_looks(
        engine, settings, later):
    """The scheduler retries a failing partner once per interval after its last scheduled attempt; the line said
    `max(last success + interval, now)`, a time that moved with every page load (13:07, 13:08, 13:18)."""
    partner_id = add_partner(engine, settings, now=NOW - timedelta(days=3))
    add_run(engine, settings, partner_id, at=NOW - timedelta(days=2), kind=RunKind.BACKFILL, trigger="connect")
    add_run(engine, settings, partner_id, at=NOW - timedelta(minutes=53), status=RunStatus.FAILED)  # 11:07
    line = _line(engine, partner_id, NOW + later)
    assert "next automatic sync ≈ 12:07 UTC" in line
    assert scheduler.due_partners(engine, now=NOW + timedelta(minutes=7), settings=settings) == [partner_id]
    assert scheduler.due_partners(engine, now=NOW + timedelta(minutes=6), settings=settings) == []


def test_a_partner_due_now_is_said_to_sync_shortly(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW - timedelta(days=3))
    add_run(engine, settings, partner_id, at=NOW - timedelta(hours=3), kind=RunKind.BACKFILL,
            trigger=RunTrigger.CONNECT)
    assert "next automatic sync: due now, starts within a few minutes" in _line(engine, partner_id, NOW)


def test_a_reconciliation_is_not_an_invoice_update(engine, settings):
    """A reconciliation reads HaloPSA and writes no invoice: the line keeps the last sync's time."""
    partner_id = add_partner(engine, settings, now=NOW - timedelta(days=3))
    add_run(engine, settings, partner_id, at=NOW - timedelta(hours=3), kind=RunKind.BACKFILL, trigger="connect")
    add_run(engine, settings, partner_id, at=NOW - timedelta(minutes=10), kind=RunKind.RECONCILE, trigger="request")
    assert _line(engine, partner_id, NOW).startswith("Invoices updated 2 h ago ·")
