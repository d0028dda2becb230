from datetime import timedelta

from core.store.tables import RunKind, RunStatus
from core.sync import window
from core.sync.window import NEW_DATA_SPAN, SCHEDULE_OVERLAP, Plan, Window
from tests.support.clock import NOW
from tests.support.factories import add_partner, add_run


def test_fetch_new_data_covers_the_last_hour(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW - timedelta(days=1))
    assert window.plan(engine, partner_id, RunKind.FETCH_NEW_DATA, NOW) == Plan(
        RunKind.FETCH_NEW_DATA, Window(NOW - NEW_DATA_SPAN, NOW))


def test_a_scheduled_sync_of_a_partner_never_backfilled_is_a_backfill_of_everything(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW - timedelta(days=1))
    add_run(engine, settings, partner_id, at=NOW - timedelta(hours=2), kind=RunKind.BACKFILL, status=RunStatus.FAILED)
    assert window.plan(engine, partner_id, RunKind.SCHEDULED, NOW) == Plan(RunKind.BACKFILL, Window(None, NOW))


def test_a_scheduled_sync_starts_at_the_last_successful_window_less_the_overlap(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW - timedelta(days=3))
    backfill_at = NOW - timedelta(days=2)
    add_run(engine, settings, partner_id, at=backfill_at, kind=RunKind.BACKFILL)
    add_run(engine, settings, partner_id, at=NOW - timedelta(hours=1), status=RunStatus.FAILED)  # does not count
    planned = window.plan(engine, partner_id, RunKind.SCHEDULED, NOW)
    assert planned == Plan(RunKind.SCHEDULED, Window(backfill_at - SCHEDULE_OVERLAP, NOW))
    assert window.last_success(engine, partner_id, now=NOW) == (backfill_at, True)


def test_a_scheduled_sync_never_covers_less_than_the_last_hour(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW - timedelta(days=3))
    add_run(engine, settings, partner_id, at=NOW - timedelta(days=2), kind=RunKind.BACKFILL)
    add_run(engine, settings, partner_id, at=NOW - timedelta(minutes=10), status=RunStatus.PARTIAL)
    assert window.plan(engine, partner_id, RunKind.SCHEDULED, NOW).window == Window(NOW - NEW_DATA_SPAN, NOW)
